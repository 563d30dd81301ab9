"""Who is calling the Druid API, and may they do it: Airflow's users and Airflow's auth manager.

Druid clients with basic security send ``Authorization: Basic``; Airflow clients send a bearer token from
``POST /auth/token`` (or the UI's session cookie). Both resolve to the auth manager's user, and every action is
authorised by the auth manager on the DAG that carries it: submitting a task is triggering a run of its DAG.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time
from typing import TYPE_CHECKING, Any, Optional

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from druidflow.airflow.druid_api.errors import DruidApiError

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.base_auth_manager import ResourceMethod

# Verified Basic credentials are remembered briefly: Druid clients poll a task's status every second, and some
# auth managers hash passwords slowly on purpose.
_CACHE_TTL_S = 30.0
_CACHE_MAX = 256
_cache: dict[str, tuple[float, Any]] = {}
_cache_lock = threading.Lock()


async def druid_user(request: Request) -> Any:
    """FastAPI dependency: the authenticated Airflow user (HTTP Basic, bearer token or session cookie), else 401."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        username, password = _decode_basic(credentials.strip())
        return await run_in_threadpool(_basic_user, username, password)
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.security import HTTPAuthorizationCredentials

    bearer = None
    if scheme.lower() == "bearer" and credentials.strip():
        bearer = HTTPAuthorizationCredentials(scheme="Bearer", credentials=credentials.strip())
    return await get_user(request, None, bearer)


def _decode_basic(credentials: str) -> tuple[str, str]:
    try:
        username, sep, password = base64.b64decode(credentials, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        sep = ""
    if not sep or not username:
        raise DruidApiError(401, "malformed HTTP Basic credentials", field="Authorization")
    return username, password


def _basic_user(username: str, password: str) -> Any:
    key = hashlib.sha256(f"{username}\0{password}".encode()).hexdigest()
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
        if hit and hit[0] > now:
            return hit[1]
    user = _authenticate(username, password)
    with _cache_lock:
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[key] = (now + _CACHE_TTL_S, user)
    return user


def _authenticate(username: str, password: str) -> Any:
    """The auth manager's user for these credentials, checked by the auth manager's own login logic."""
    from airflow.api_fastapi.app import get_auth_manager
    from fastapi import HTTPException

    manager = get_auth_manager()
    try:
        from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

        if isinstance(manager, SimpleAuthManager):
            import anyio
            from airflow.api_fastapi.auth.managers.simple.datamodels.login import LoginBody
            from airflow.api_fastapi.auth.managers.simple.services.login import SimpleAuthManagerLogin

            token = SimpleAuthManagerLogin.create_token(LoginBody(username=username, password=password))
            return anyio.from_thread.run(manager.get_user_from_token, token)
        create_token = getattr(manager, "create_token", None)  # FAB and other password-based managers
        if callable(create_token):
            user = create_token(headers={}, body={"username": username, "password": password})
            if user:
                return user
            raise DruidApiError(401, "invalid username or password")
    except HTTPException as exc:
        raise DruidApiError(
            401, "invalid username or password" if exc.status_code in (400, 401) else str(exc.detail)
        ) from exc
    except ValueError as exc:
        raise DruidApiError(401, f"invalid credentials: {exc}") from exc
    raise DruidApiError(
        401,
        f"the auth manager {type(manager).__name__} does not accept HTTP Basic credentials; send "
        "'Authorization: Bearer <token>' with a token from POST /auth/token",
    )


def authorize(user: Any, method: ResourceMethod, dag_id: Optional[str], action: str) -> None:
    """Raise 403 unless the auth manager lets ``user`` do ``method`` on the runs of ``dag_id`` (any DAG if None)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    details = DagDetails(id=dag_id) if dag_id else None
    allowed = get_auth_manager().is_authorized_dag(
        method=method, access_entity=DagAccessEntity.RUN, details=details, user=user
    )
    if not allowed:
        where = f"DAG {dag_id}" if dag_id else "DAG runs"
        raise DruidApiError(403, f"user {user.get_name()!r} may not {action} (needs {method} on runs of {where})")
