"""Druid's JSON error shape for every failure of the Druid API, with the offending field named.

Druid (since 28) answers errors with a ``DruidException`` body: ``{"error": "druidException", "errorCode",
"persona", "category", "errorMessage", "context"}``. Clients print ``errorMessage``; we also put the field path and
the value that was refused into ``context`` so scripts can tell which field to fix.
"""

from __future__ import annotations

from typing import Any, Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import JSONResponse

# HTTP status -> (Druid's errorCode, category)
_KINDS = {
    400: ("invalidInput", "INVALID_INPUT"),
    401: ("unauthorized", "UNAUTHORIZED"),
    403: ("forbidden", "FORBIDDEN"),
    404: ("notFound", "NOT_FOUND"),
    405: ("invalidInput", "INVALID_INPUT"),
    409: ("conflict", "CONFLICT"),
    413: ("requestTooLarge", "INVALID_INPUT"),
    503: ("unavailable", "UNAVAILABLE"),
}

BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="druidflow", Bearer'}


class DruidApiError(Exception):
    """An error answered in Druid's shape: ``status``, a message, and the request field it is about."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        field: Optional[str] = None,
        value: Any = None,
        headers: Optional[dict[str, str]] = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.value = value
        self.headers = headers


def error_body(status: int, message: str, field: Optional[str] = None, value: Any = None) -> dict[str, Any]:
    code, category = _KINDS.get(status, ("runtimeFailure", "RUNTIME_FAILURE"))
    context: dict[str, Any] = {}
    if field is not None:
        context["field"] = field
        context["value"] = _printable(value)
    return {
        "error": "druidException",
        "errorCode": code,
        "persona": "USER" if status < 500 else "OPERATOR",
        "category": category,
        "errorMessage": message,
        "context": context,
    }


def _printable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


def error_response(exc: DruidApiError) -> JSONResponse:
    headers = exc.headers
    if exc.status == 401 and not headers:
        headers = BASIC_CHALLENGE
    return JSONResponse(error_body(exc.status, exc.message, exc.field, exc.value), exc.status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` in Druid's shape (Airflow's auth errors and FastAPI's validation included)."""
    from druidflow.exceptions import SpecError

    @app.exception_handler(DruidApiError)
    async def _druid(request: Request, exc: DruidApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(SpecError)
    async def _spec(request: Request, exc: SpecError) -> JSONResponse:
        return error_response(DruidApiError(400, str(exc), field=exc.path, value=exc.value))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 401:
            headers.setdefault("WWW-Authenticate", BASIC_CHALLENGE["WWW-Authenticate"])
        return JSONResponse(error_body(exc.status_code, str(exc.detail)), exc.status_code, headers=headers or None)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = (exc.errors() or [{}])[0]
        loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body")]
        field = ".".join(loc) or None
        message = f"{field}: {first.get('msg', 'invalid')}" if field else str(first.get("msg", "invalid request"))
        return JSONResponse(error_body(400, message, field, first.get("input")), 400)
