"""Where ingested rows come from: input sources, input formats and the classic firehoses (``ioConfig``).

Accepted as Druid users write them (camelCase, discriminated by ``type``). A classic firehose turns into the
equivalent modern input source with :meth:`to_input_source`, so readers only ever see input sources.

What the readers (``druidflow.inputs``) support beyond plain validation is documented on each model; anything
Druid accepts but Druidflow cannot honour (a flatten path outside the supported JSONPath/jq subsets, a
multi-character TSV delimiter, Jackson parser features that relax JSON syntax) is rejected here, before any work starts.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal, Optional, Union
from urllib.parse import urlparse

from pydantic import Field, ValidationInfo, field_validator, model_validator
from typing_extensions import Self

from druidflow.exceptions import InputError
from druidflow.intervals import Interval
from druidflow.specs.base import DruidModel
from druidflow.specs.field_paths import FieldPath, parse_jq, parse_json_path

# ---------------------------------------------------------------------------------------------------------------
# Password providers (Druid's ``PasswordProvider``: a plain string, or {"type": "default"|"environment", ...})


class DefaultPasswordProvider(DruidModel):
    """``{"type": "default", "password": "..."}``: the password itself."""

    type: Literal["default"] = "default"
    password: str

    def get(self) -> str:
        return self.password


class EnvironmentVariablePasswordProvider(DruidModel):
    """``{"type": "environment", "variable": "NAME"}``: the password is read from an environment variable."""

    type: Literal["environment"] = "environment"
    variable: str

    def get(self) -> str:
        value = os.environ.get(self.variable)
        if value is None:
            raise InputError(f"password environment variable {self.variable!r} is not set")
        return value


PasswordProvider = Union[
    str,
    Annotated[Union[DefaultPasswordProvider, EnvironmentVariablePasswordProvider], Field(discriminator="type")],
]


def resolve_password(provider: Optional[PasswordProvider]) -> Optional[str]:
    """The secret a password provider stands for (``None`` stays ``None``)."""
    if provider is None or isinstance(provider, str):
        return provider
    return provider.get()


# ---------------------------------------------------------------------------------------------------------------
# flattenSpec


class FlattenField(DruidModel):
    """One ``flattenSpec.fields`` entry.

    ``root`` reads the top-level field ``expr`` (or ``name``); ``path`` evaluates a JSONPath expression and ``jq`` a
    jq expression (the subsets in :mod:`druidflow.specs.field_paths`); ``tree`` follows ``nodes`` (a list of keys).
    """

    type: Literal["root", "path", "jq", "tree"]
    name: str = Field(min_length=1)
    expr: Optional[str] = None
    nodes: Optional[list[str]] = None

    @model_validator(mode="after")
    def _check(self) -> FlattenField:
        if self.type in ("path", "jq"):
            if not self.expr:
                raise ValueError(f"flatten field {self.name!r}: a {self.type!r} field needs 'expr'")
            self.path  # noqa: B018 - compiles the path now, so a bad one fails the spec, not the first row
        if self.type == "tree" and not self.nodes:
            raise ValueError(f"flatten field {self.name!r}: a 'tree' field needs 'nodes'")
        return self

    @property
    def path(self) -> FieldPath:
        """The path from the record's root to this field's value."""
        if self.type == "root":
            return FieldPath(steps=(self.expr or self.name,))
        if self.type == "tree":
            return FieldPath(steps=tuple(self.nodes or ()))
        if self.type == "jq":
            return parse_jq(self.expr or ".")
        return parse_json_path(self.expr or "$")


class FlattenSpec(DruidModel):
    """``flattenSpec``: extra columns taken from nested data, plus (``useFieldDiscovery``) the top-level fields."""

    use_field_discovery: bool = True
    fields: list[FlattenField] = Field(default_factory=list)

    @field_validator("fields", mode="before")
    @classmethod
    def _root_shorthand(cls, fields: Any) -> Any:
        # Druid: "when defining a root-level field, it is possible to define only the field name, as a string".
        if isinstance(fields, list):
            return [{"type": "root", "name": f} if isinstance(f, str) else f for f in fields]
        return fields

    @field_validator("fields")
    @classmethod
    def _unique_names(cls, fields: list[FlattenField]) -> list[FlattenField]:
        seen: set[str] = set()
        for f in fields:
            if f.name in seen:
                raise ValueError(f"duplicate flatten field name {f.name!r}")
            seen.add(f.name)
        return fields


# ---------------------------------------------------------------------------------------------------------------
# Input formats

# Jackson features that relax JSON syntax; our parser cannot honour them, so enabling one is an error.
_UNSUPPORTED_JSON_FEATURES = frozenset(
    {
        "ALLOW_COMMENTS",
        "ALLOW_YAML_COMMENTS",
        "ALLOW_UNQUOTED_FIELD_NAMES",
        "ALLOW_SINGLE_QUOTES",
        "ALLOW_UNQUOTED_CONTROL_CHARS",
        "ALLOW_BACKSLASH_ESCAPING_ANY_CHARACTER",
        "ALLOW_NUMERIC_LEADING_ZEROS",
        "ALLOW_NON_NUMERIC_NUMBERS",
        "ALLOW_MISSING_VALUES",
        "ALLOW_TRAILING_COMMA",
        "ALLOW_LEADING_DECIMAL_POINT_FOR_NUMBERS",
    }
)

DEFAULT_LIST_DELIMITER = "\u0001"  # Druid's Parsers.DEFAULT_LIST_DELIMITER (Ctrl-A)


class JsonInputFormat(DruidModel):
    """``{"type": "json"}``: one JSON object per line (JSON lines).

    ``featureSpec`` is Jackson's parser feature map; features that relax JSON syntax cannot be honoured and are
    rejected when enabled, the others are accepted and have no effect. ``keepNullColumns`` is passed on to the
    engine (schemaless dimension discovery).
    """

    type: Literal["json"] = "json"
    flatten_spec: Optional[FlattenSpec] = None
    feature_spec: Optional[dict[str, bool]] = None
    keep_null_columns: Optional[bool] = None
    assume_newline_delimited: Optional[bool] = None
    use_json_node_reader: Optional[bool] = None

    @field_validator("feature_spec")
    @classmethod
    def _features(cls, features: Optional[dict[str, bool]]) -> Optional[dict[str, bool]]:
        for name, enabled in (features or {}).items():
            if enabled and name in _UNSUPPORTED_JSON_FEATURES:
                raise ValueError(f"JSON parser feature {name} is not supported (input must be standard JSON)")
        return features


class _DelimitedInputFormat(DruidModel):
    """What CSV and TSV share (Druid's ``FlatTextInputFormat``)."""

    # Declared before ``columns`` so that the columns check below can see them.
    find_columns_from_header: Optional[bool] = None
    has_header_row: Optional[bool] = None  # Druid's deprecated name for findColumnsFromHeader
    list_delimiter: Optional[str] = None
    skip_header_rows: int = Field(default=0, ge=0)
    columns: Optional[list[str]] = Field(default=None, validate_default=True)

    @field_validator("list_delimiter")
    @classmethod
    def _list_delimiter(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and value == "":
            raise ValueError("listDelimiter must not be empty")
        return value

    @field_validator("columns")
    @classmethod
    def _columns(cls, columns: Optional[list[str]], info: ValidationInfo) -> Optional[list[str]]:
        header = info.data.get("find_columns_from_header") or info.data.get("has_header_row")
        if not columns and not header:
            raise ValueError("columns are required unless findColumnsFromHeader is true")
        seen: set[str] = set()
        for c in columns or ():
            if c in seen:
                raise ValueError(f"duplicate column {c!r}")
            seen.add(c)
        return columns

    @property
    def uses_header(self) -> bool:
        """Whether column names come from the first row after ``skipHeaderRows``."""
        return bool(self.find_columns_from_header or self.has_header_row)

    @property
    def delimiter_char(self) -> str:
        raise NotImplementedError

    @property
    def effective_list_delimiter(self) -> str:
        """The multi-value delimiter, with Druid's default (``\\u0001``)."""
        return self.list_delimiter if self.list_delimiter is not None else DEFAULT_LIST_DELIMITER

    @model_validator(mode="after")
    def _delimiters(self) -> Self:
        delim = self.delimiter_char
        if self.list_delimiter == delim:
            raise ValueError(f"listDelimiter cannot be the same as the delimiter {delim!r}")
        for c in self.columns or ():
            if delim in c:
                raise ValueError(f"column {c!r} contains the delimiter {delim!r}")
        return self


class CsvInputFormat(_DelimitedInputFormat):
    """``{"type": "csv"}``: comma-separated, ``"``-quoted; every value is read as a string, empty means null."""

    type: Literal["csv"] = "csv"

    @property
    def delimiter_char(self) -> str:
        return ","


class TsvInputFormat(_DelimitedInputFormat):
    """``{"type": "tsv"}``: values split on ``delimiter`` (tab by default), no quoting, as Druid's TSV reader does."""

    type: Literal["tsv"] = "tsv"
    delimiter: str = Field(default="\t", validate_default=True)

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, value: str) -> str:
        if len(value) != 1:
            raise ValueError("delimiter must be a single character")
        if value in "\r\n":
            raise ValueError("delimiter cannot be a line break")
        return value

    @property
    def delimiter_char(self) -> str:
        return self.delimiter


class ParquetInputFormat(DruidModel):
    """``{"type": "parquet"}``: Parquet files. ``binaryAsString`` turns un-annotated binary columns into UTF-8."""

    type: Literal["parquet"] = "parquet"
    binary_as_string: bool = False
    flatten_spec: Optional[FlattenSpec] = None


InputFormat = Annotated[
    Union[JsonInputFormat, CsvInputFormat, TsvInputFormat, ParquetInputFormat], Field(discriminator="type")
]

# ---------------------------------------------------------------------------------------------------------------
# Input sources


def _check_uri(uri: str, schemes: tuple[str, ...], need_path: bool) -> str:
    parsed = urlparse(uri)
    if parsed.scheme.lower() not in schemes:
        raise ValueError(f"URI {uri!r} must use {' or '.join(s + '://' for s in schemes)}")
    if not parsed.netloc:
        raise ValueError(f"URI {uri!r} has no host or bucket")
    if need_path and not parsed.path.lstrip("/"):
        raise ValueError(f"URI {uri!r} names no object")
    return uri


class LocalInputSource(DruidModel):
    """``{"type": "local"}``: files under ``baseDir`` (searched recursively) whose *name* matches ``filter`` (a
    commons-io wildcard: ``*`` and ``?``), then the listed ``files``. Empty files are skipped; each file is read
    once even if both select it."""

    type: Literal["local"] = "local"
    base_dir: Optional[str] = None
    filter: Optional[str] = None
    files: Optional[list[str]] = None

    @model_validator(mode="after")
    def _check(self) -> LocalInputSource:
        if self.base_dir is not None and not self.filter:
            raise ValueError("filter is required when baseDir is set")
        if self.base_dir is None and not self.files:
            raise ValueError("at least one of baseDir or files must be set")
        return self


class InlineInputSource(DruidModel):
    """``{"type": "inline", "data": "..."}``: the input itself, inside the spec."""

    type: Literal["inline"] = "inline"
    data: str = Field(min_length=1)


class HttpInputSource(DruidModel):
    """``{"type": "http"}``: files downloaded from ``uris`` (http or https), with optional basic authentication."""

    type: Literal["http"] = "http"
    uris: list[str] = Field(min_length=1)
    http_authentication_username: Optional[str] = None
    http_authentication_password: Optional[PasswordProvider] = None
    request_headers: Optional[dict[str, str]] = None

    @field_validator("uris")
    @classmethod
    def _uris(cls, uris: list[str]) -> list[str]:
        return [_check_uri(u, ("http", "https"), need_path=False) for u in uris]


class S3Object(DruidModel):
    """One ``objects`` entry of an s3 input source."""

    bucket: str = Field(min_length=1)
    path: str = Field(min_length=1)


class S3Properties(DruidModel):
    """``properties`` of an s3 input source: credentials used instead of the default chain."""

    access_key_id: Optional[PasswordProvider] = None
    secret_access_key: Optional[PasswordProvider] = None
    session_token: Optional[PasswordProvider] = None
    assume_role_arn: Optional[str] = None
    assume_role_external_id: Optional[str] = None

    @model_validator(mode="after")
    def _pair(self) -> S3Properties:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("accessKeyId and secretAccessKey must be given together")
        return self


class S3EndpointConfig(DruidModel):
    """``endpointConfig``: an S3-compatible endpoint and its signing region."""

    url: Optional[str] = None
    signing_region: Optional[str] = None


class S3ClientConfig(DruidModel):
    """``clientConfig``: protocol and addressing of the S3 client."""

    protocol: Optional[Literal["http", "https"]] = None
    disable_chunked_encoding: Optional[bool] = None
    enable_path_style_access: Optional[bool] = None
    force_global_bucket_access_enabled: Optional[bool] = None


class S3ProxyConfig(DruidModel):
    """``proxyConfig``: an HTTP proxy for the S3 client."""

    host: Optional[str] = None
    port: Optional[int] = Field(default=None, ge=1, le=65535)
    username: Optional[str] = None
    password: Optional[PasswordProvider] = None


class S3InputSource(DruidModel):
    """``{"type": "s3"}``: exactly one of ``uris``, ``prefixes`` or ``objects``; ``objectGlob`` (Java glob: ``*``
    stays within one ``/`` level, ``**`` crosses them) filters object keys. Empty objects are skipped when listing
    by prefix."""

    type: Literal["s3"] = "s3"
    uris: Optional[list[str]] = None
    prefixes: Optional[list[str]] = None
    objects: Optional[list[S3Object]] = None
    object_glob: Optional[str] = None
    properties: Optional[S3Properties] = None
    endpoint_config: Optional[S3EndpointConfig] = None
    client_config: Optional[S3ClientConfig] = None
    proxy_config: Optional[S3ProxyConfig] = None

    @field_validator("uris")
    @classmethod
    def _uris(cls, uris: Optional[list[str]]) -> Optional[list[str]]:
        return None if uris is None else [_check_uri(u, ("s3", "s3a", "s3n"), need_path=True) for u in uris]

    @field_validator("prefixes")
    @classmethod
    def _prefixes(cls, prefixes: Optional[list[str]]) -> Optional[list[str]]:
        return None if prefixes is None else [_check_uri(u, ("s3", "s3a", "s3n"), need_path=False) for u in prefixes]

    @model_validator(mode="after")
    def _exactly_one(self) -> S3InputSource:
        given = [n for n in ("uris", "prefixes", "objects") if getattr(self, n)]
        if len(given) != 1:
            detail = "none is set" if not given else f"got {' and '.join(given)}"
            raise ValueError(f"exactly one of uris, prefixes or objects must be set ({detail})")
        return self


class WindowedSegmentId(DruidModel):
    """An entry of ``segments`` in a druid input source: a segment id and the intervals of it to read."""

    segment_id: str
    intervals: list[Interval]


class DruidInputSource(DruidModel):
    """``{"type": "druid"}``: re-read the segments of a dataSource. ``dimensions``/``metrics``: null means all,
    ``[]`` means none. Read by the engine, not by ``druidflow.inputs``."""

    type: Literal["druid"] = "druid"
    data_source: str = Field(min_length=1)
    interval: Optional[Interval] = None
    segments: Optional[list[WindowedSegmentId]] = None
    filter: Optional[dict[str, Any]] = None
    dimensions: Optional[list[str]] = None
    metrics: Optional[list[str]] = None

    @model_validator(mode="after")
    def _interval_or_segments(self) -> DruidInputSource:
        if (self.interval is None) == (self.segments is None):
            raise ValueError("exactly one of interval or segments must be set")
        return self


class CombiningInputSource(DruidModel):
    """``{"type": "combining", "delegates": [...]}``: the rows of every delegate input source, one after another
    (Druid's update tutorial: a dataSource's own segments plus a new file, rolled up together). File delegates are
    read in the task's ``inputFormat``; ``druid`` delegates re-read segments."""

    type: Literal["combining"] = "combining"
    delegates: list[InputSource] = Field(min_length=1)

    def flat_delegates(self) -> list[Any]:
        """The delegates, nested combining sources expanded, in reading order."""
        out: list[Any] = []
        for d in self.delegates:
            out.extend(d.flat_delegates() if isinstance(d, CombiningInputSource) else [d])
        return out

    @property
    def needs_format(self) -> bool:
        return any(d.type != "druid" for d in self.flat_delegates())


InputSource = Annotated[
    Union[LocalInputSource, InlineInputSource, HttpInputSource, S3InputSource, DruidInputSource, CombiningInputSource],
    Field(discriminator="type"),
]
CombiningInputSource.model_rebuild()


def needs_input_format(source: Any) -> bool:
    """Whether rows of ``source`` are read through an ``inputFormat`` (everything but re-read segments)."""
    if isinstance(source, CombiningInputSource):
        return source.needs_format
    return source.type != "druid"

# ---------------------------------------------------------------------------------------------------------------
# Parsing the unions


def _parse_union(union: Any, data: Any, path: str) -> Any:
    from pydantic import TypeAdapter, ValidationError

    from druidflow.specs.base import spec_error_from

    try:
        adapter = TypeAdapter(union)
        return adapter.validate_json(data) if isinstance(data, (str, bytes)) else adapter.validate_python(data)
    except ValidationError as exc:
        raise spec_error_from(exc, path) from None


def parse_input_source(data: Any, path: str = "inputSource") -> Any:
    """Validate an ``inputSource`` object; raises SpecError naming the field path and value."""
    return _parse_union(InputSource, data, path)


def parse_input_format(data: Any, path: str = "inputFormat") -> Any:
    """Validate an ``inputFormat`` object; raises SpecError naming the field path and value."""
    return _parse_union(InputFormat, data, path)


def parse_firehose(data: Any, path: str = "firehose") -> Any:
    """Validate a classic ``firehose`` object; raises SpecError naming the field path and value."""
    from druidflow.specs.firehoses import Firehose

    return _parse_union(Firehose, data, path)
