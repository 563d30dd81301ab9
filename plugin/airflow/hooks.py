"""Hooks that turn Airflow Connections into Druidflow's engine objects.

Airflow 3 runs task code with the metadata-DB ORM blocked (``settings.Session`` raises, ``sql_alchemy_conn``
reads ``airflow-db-not-allowed:///``), so nothing here touches Airflow's session or engine. The metadata hook
builds its *own* SQLAlchemy engine from a Connection, which may well point at the Airflow database itself (that is
where ``airflow db migrate`` puts the ``druidflow_*`` tables).
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from druidflow.airflow.provider_info import DEEP_STORAGE_CONN_TYPE, METADATA_CONN_TYPE

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from druidflow.locks import TaskLockbox
    from druidflow.metadata.store import MetadataStore
    from druidflow.storage import DeepStorage

# Connection types (as Airflow parses URI schemes) mapped to SQLAlchemy dialect+driver names.
_DIALECTS = {
    "postgres": "postgresql+psycopg2",
    "postgresql": "postgresql+psycopg2",
    "sqlite": "sqlite",
    "mysql": "mysql+pymysql",
}
# Keys of a metadata Connection's extra that configure the hook rather than the database driver.
_HOOK_EXTRAS = {"sqlalchemy_url", "dialect", "lock_lease_seconds"}

#: Lock lease used by Airflow steps. Longer than the engine's default: nobody heartbeats *between* two steps of a
#: workflow (while the next one waits for the scheduler or a pool slot), and a failed run's teardown releases the
#: locks anyway, so a long lease costs nothing when things go wrong.
DEFAULT_LOCK_LEASE_SECONDS = 600.0


def sqlalchemy_url_from_connection(conn: Any) -> str:
    """The SQLAlchemy URL a Connection describes.

    Accepted shapes, first match wins:

    * extra ``sqlalchemy_url``: used verbatim (any connection type);
    * ``sqlite`` (URI ``sqlite:////abs/path.db``, or type ``druidflow`` with dialect ``sqlite``): the file path
      from ``schema`` or ``host``;
    * anything else: ``<dialect>://login:password@host:port/schema`` where the dialect is the extra ``dialect``,
      or derived from the connection type (``postgres`` -> ``postgresql+psycopg2``; a type that already names a
      driver, like ``postgresql+psycopg2``, is used as is). Remaining extras become URL query parameters.
    """
    import sqlalchemy as sa

    extra = dict(conn.extra_dejson or {})
    if extra.get("sqlalchemy_url"):
        return str(extra["sqlalchemy_url"])

    conn_type = (conn.conn_type or "").lower()
    dialect = extra.get("dialect") or _DIALECTS.get(conn_type)
    if dialect is None:
        if conn_type in ("", METADATA_CONN_TYPE):
            dialect = "postgresql+psycopg2"
        elif "+" in conn_type or conn_type in sa.dialects.__all__:
            dialect = conn_type
        else:
            raise ValueError(
                f"Connection {conn.conn_id!r} has type {conn.conn_type!r}, which is not a database Druidflow knows; "
                "set its extra 'sqlalchemy_url' (e.g. postgresql+psycopg2://user:pw@host/db or sqlite:////path.db)"
            )

    if dialect.startswith("sqlite"):
        path = conn.schema or conn.host or ""
        if not path:
            raise ValueError(f"Connection {conn.conn_id!r} is a SQLite connection without a file path")
        return f"{dialect}:///{path}"

    query = {k: str(v) for k, v in extra.items() if k not in _HOOK_EXTRAS}
    return sa.engine.URL.create(
        dialect,
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host or None,
        port=conn.port or None,
        database=conn.schema or None,
        query=query,
    ).render_as_string(hide_password=False)


class DruidflowMetadataHook(BaseHook):
    """Druidflow's metadata store and task lockbox, on an engine built from an Airflow Connection.

    The Connection may be written like Airflow's own ``sql_alchemy_conn`` (``postgresql+psycopg2://...`` or
    ``sqlite:////abs/path.db``) or be of type ``druidflow`` with host/port/login/password/schema; see
    :func:`sqlalchemy_url_from_connection`. One engine is shared by the store and the lockbox of a hook.

    The Connection's extra ``lock_lease_seconds`` sets the lock lease (default
    :data:`DEFAULT_LOCK_LEASE_SECONDS`).

    :param metadata_conn_id: id of the Connection to the database that holds the ``druidflow_*`` tables.
    """

    conn_name_attr = "metadata_conn_id"
    default_conn_name = "druidflow_metadata"
    conn_type = METADATA_CONN_TYPE
    hook_name = "Druidflow metadata DB"

    def __init__(self, metadata_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.metadata_conn_id = metadata_conn_id

    @cached_property
    def connection(self) -> Any:
        """The Airflow Connection (resolved once per hook)."""
        return self.get_connection(self.metadata_conn_id)

    @cached_property
    def sqlalchemy_url(self) -> str:
        """The SQLAlchemy URL of the Connection (contains the password; never log it)."""
        return sqlalchemy_url_from_connection(self.connection)

    @property
    def lock_lease_seconds(self) -> float:
        """The lease of locks taken or renewed through this hook."""
        value = (self.connection.extra_dejson or {}).get("lock_lease_seconds", DEFAULT_LOCK_LEASE_SECONDS)
        try:
            lease = float(value)
        except (TypeError, ValueError):
            lease = -1.0
        if lease <= 0:
            raise ValueError(f"Connection {self.metadata_conn_id!r}: extra lock_lease_seconds must be a positive number, got {value!r}")
        return lease

    @cached_property
    def engine(self) -> Engine:
        """This hook's own engine (SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE``)."""
        from druidflow.metadata.engine import make_engine

        return make_engine(self.sqlalchemy_url)

    @cached_property
    def store(self) -> MetadataStore:
        """The segments/tasks metadata store."""
        from druidflow.metadata.store import MetadataStore

        return MetadataStore(self.engine)

    @cached_property
    def lockbox(self) -> TaskLockbox:
        """The task lockbox."""
        from druidflow.locks import TaskLockbox

        return TaskLockbox(self.engine, lease_seconds=self.lock_lease_seconds)

    def test_connection(self) -> tuple[bool, str]:
        """Check that the database answers and that Druidflow's tables exist (for the UI's Test button)."""
        import sqlalchemy as sa

        from druidflow.metadata.tables import tasks

        try:
            with self.engine.connect() as conn:
                conn.execute(sa.select(sa.func.count()).select_from(tasks))
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}. Did `airflow db migrate` run with the druidflow provider?"
        return True, "Connected; Druidflow tables present"

    def close(self) -> None:
        """Dispose of the engine's pooled connections."""
        if "engine" in self.__dict__:
            self.engine.dispose()


class DeepStorageHook(BaseHook):
    """Deep storage from an Airflow Connection: a local/shared directory, or S3 (AWS or S3-compatible).

    The Connection's extra ``uri`` names the location (``/data/deep-storage``, ``file:///...``,
    ``s3://bucket/prefix``); a Connection written as a URI ``s3://bucket/prefix`` works too. S3 credentials come
    from the Connection named in extra ``aws_conn_id`` when set, else from this Connection: login = access key id,
    password = secret access key, extra ``endpoint_url`` / ``region_name``; with neither, boto3's default chain.

    :param deep_storage_conn_id: id of the deep storage Connection.
    """

    conn_name_attr = "deep_storage_conn_id"
    default_conn_name = "druidflow_deep_storage"
    conn_type = DEEP_STORAGE_CONN_TYPE
    hook_name = "Druidflow deep storage"

    def __init__(self, deep_storage_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.deep_storage_conn_id = deep_storage_conn_id

    @cached_property
    def _settings(self) -> tuple[str, dict[str, Any]]:
        conn = self.get_connection(self.deep_storage_conn_id)
        extra = dict(conn.extra_dejson or {})
        uri = extra.get("uri") or _uri_from_conn_fields(conn)
        if not uri:
            raise ValueError(
                f"Deep storage Connection {self.deep_storage_conn_id!r} names no location: set its extra 'uri' "
                "to a directory (/data/deep-storage) or s3://bucket/prefix"
            )
        options: dict[str, Any] = {}
        if str(uri).startswith("s3://"):
            creds = conn
            if extra.get("aws_conn_id"):
                creds = self.get_connection(extra["aws_conn_id"])
            options = s3_options_from_connection(creds)
            for key in ("endpoint_url", "region_name"):  # this Connection's own settings win
                if extra.get(key):
                    options[key] = extra[key]
        return str(uri), options

    @property
    def uri(self) -> str:
        """The deep storage URI (a path or ``s3://bucket/prefix``)."""
        return self._settings[0]

    @property
    def s3_options(self) -> dict[str, Any]:
        """Keyword arguments for the S3 client (credentials, endpoint, region); empty for a local path."""
        return dict(self._settings[1])

    @cached_property
    def storage(self) -> DeepStorage:
        """The :class:`~druidflow.storage.DeepStorage` this Connection describes."""
        from druidflow.storage import deep_storage_from_uri

        return deep_storage_from_uri(self.uri, **self.s3_options)

    def test_connection(self) -> tuple[bool, str]:
        """Check that the location can be resolved (for the UI's Test button)."""
        try:
            self.storage  # noqa: B018 - building it validates the URI and options
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"
        return True, f"Deep storage at {self.uri}"


def _uri_from_conn_fields(conn: Any) -> str | None:
    conn_type = (conn.conn_type or "").lower()
    if conn_type == "s3" and conn.host:
        return f"s3://{conn.host}/{conn.schema or ''}".rstrip("/")
    if conn_type in ("file", "local", DEEP_STORAGE_CONN_TYPE):
        path = conn.schema or conn.host
        # Airflow parses file:///data/deep into schema "data/deep": the leading slash belongs to the path.
        return ("/" + path.lstrip("/")) if path and conn_type == "file" else (path or None)
    return None


def s3_options_from_connection(conn: Any) -> dict[str, Any]:
    """boto3 client options from an AWS-style Connection: login/password keys, extra endpoint_url/region_name."""
    extra = dict(conn.extra_dejson or {})
    options: dict[str, Any] = {}
    if conn.login:
        options["aws_access_key_id"] = conn.login
    if conn.password:
        options["aws_secret_access_key"] = conn.password
    endpoint = extra.get("endpoint_url") or (extra.get("service_config") or {}).get("s3", {}).get("endpoint_url")
    if endpoint:
        options["endpoint_url"] = endpoint
    if extra.get("aws_session_token"):
        options["aws_session_token"] = extra["aws_session_token"]
    region = extra.get("region_name") or extra.get("region")
    if region:
        options["region_name"] = region
    return options
