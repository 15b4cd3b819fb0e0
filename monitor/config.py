"""The typed config tree, read from TOML and validated once at load.

Contract:

- ``resolve_path(cli_path)``: ``-c PATH``, else ``$NEXOMON_CONFIG``, else
  ``./nexomon.toml``.
- ``load(path)`` returns a frozen :class:`Config` or raises
  :class:`~monitor.errors.ConfigError` worded on one line as
  ``FILE: key.path: rule`` (``nexomon.toml: targets[0].chat_interval: must
  be at least 1s``). Key paths write list items as ``[N]`` and pricing model
  ids always double-quoted (``pricing."sim-fast".input``).
- Unknown keys are refused everywhere; every model is frozen.
- ``$NEXOMON_DATABASE_URL``, when set and non-empty, replaces
  ``monitor.database_url``. Relative paths in the file (``api_key_file``,
  ``spool_dir``, a relative SQLite database) are resolved against the config
  file's directory, so the daemon does not depend on its working directory.
- API keys are never part of the config: a target names an environment
  variable or a file, and :meth:`TargetConfig.api_key` reads it at call time.
  No error message and no ``repr()`` ever contains a key; the database URL's
  password is masked in ``repr()``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from monitor.durations import format_duration, parse_duration
from monitor.errors import ConfigError

__all__ = [
    "DATABASE_URL_ENV",
    "DEFAULT_PATH",
    "PATH_ENV",
    "BudgetConfig",
    "Config",
    "MonitorConfig",
    "Price",
    "TargetConfig",
    "load",
    "parse_duration",
    "resolve_path",
]

PATH_ENV = "NEXOMON_CONFIG"
DATABASE_URL_ENV = "NEXOMON_DATABASE_URL"
DEFAULT_PATH = "nexomon.toml"

_NAME = re.compile(r"[a-z0-9_-]+")
_TOP_LEVEL_KEYS = ("monitor", "targets", "pricing", "budget")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")
_MAX_TIMEOUT = 600.0
_DURATION = 'must be a duration: seconds, or a string like "30s", "5m", "1h"'
_URL = 'must be an http:// or https:// URL, e.g. "https://api.nexorouter.com/v1"'
_DB_URL = (
    'must be a database URL, e.g. "sqlite:///nexomon.db" or "postgresql+psycopg://user@host/db"'
)
_INLINE_KEY = (
    "inline API keys are not allowed; put the key in an environment variable "
    '(api_key_env = "NAME") or a file (api_key_file = "PATH")'
)


class _Rule(ValueError):
    """A broken rule, worded for the user, optionally deeper than the validator's loc."""

    def __init__(self, rule: str, *loc: str | int) -> None:
        super().__init__(rule)
        self.rule = rule
        self.loc = loc


def _seconds(value: Any) -> float:
    # Numbers pass through so a negative one gets the range message below.
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:  # tomllib reads integers of any size
            raise _Rule(_DURATION) from None
        if seconds == seconds and abs(seconds) != float("inf"):
            return seconds
    elif isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError:
            pass
    raise _Rule(_DURATION)


def _timeout(value: Any) -> float:
    seconds = _seconds(value)
    if seconds <= 0:
        raise _Rule("must be greater than 0s")
    if seconds > _MAX_TIMEOUT:
        raise _Rule(f"must be at most {format_duration(_MAX_TIMEOUT)}")
    return seconds


def _interval(value: Any) -> float:
    seconds = _seconds(value)
    if seconds < 1:
        raise _Rule("must be at least 1s")
    return seconds


def _money(value: Any) -> Decimal:
    # str() first: Decimal(0.1) would be 0.1000000000000000055511151231257827.
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation:
            raise _Rule("must be a number") from None
    else:
        raise _Rule("must be a number")
    if not amount.is_finite():
        raise _Rule("must be a finite number")
    return amount


def _non_empty(value: str) -> str:
    if not value.strip():
        raise _Rule("must not be empty")
    return value


def _env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise _Rule(
            "must be the name of an environment variable (letters, digits and _), not its value"
        )
    return value


def _listen_parts(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or (":" in host and not _is_ip(host)) or not port.isdigit():
        raise _Rule('must be HOST:PORT, e.g. "127.0.0.1:9464" or "[::1]:9464"')
    if not (_is_ip(host) or _HOSTNAME.fullmatch(host)):
        raise _Rule("must be HOST:PORT with an IP address or host name")
    if int(port) > 65535:
        raise _Rule("port must be at most 65535")
    return host, int(port)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _base_url(value: str) -> str:
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise _Rule(_URL) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _Rule(_URL)
    if parts.username is not None or parts.password is not None:
        raise _Rule("must not contain credentials; use api_key_env or api_key_file")
    if parts.query or parts.fragment:
        raise _Rule("must not have a query string or fragment")
    return value.strip().rstrip("/")


def _database_url(value: str, base_dir: Path | None, from_env: str | None = None) -> str:
    """Check ``value`` parses; make a relative SQLite file path absolute under base_dir."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(value)
    except (ArgumentError, ValueError):
        # Never echo the URL: it may hold a password.
        prefix = f"{from_env} " if from_env else ""
        raise _Rule(prefix + _DB_URL) from None
    database = url.database
    if (
        base_dir is None
        or not url.drivername.startswith("sqlite")
        or not database
        or database == ":memory:"
        or database.startswith("file:")
        or Path(database).is_absolute()
    ):
        return value
    return url.set(database=str(base_dir / database)).render_as_string(hide_password=False)


def _key_path(loc: tuple[str | int, ...]) -> str:
    """``("targets", 0, "pricing", "m", "input")`` -> ``targets[0].pricing."m".input``."""
    out = ""
    model_id_next = False
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        if part == "[key]":  # pydantic's marker for a dict key; the key itself came before
            continue
        if model_id_next or not _BARE_KEY.fullmatch(part):
            segment = json.dumps(part, ensure_ascii=False)
        else:
            segment = part
        model_id_next = not model_id_next and part == "pricing"
        out += f".{segment}" if out else segment
    return out


_TYPE_RULES = {
    "extra_forbidden": "unknown key",
    "missing": "is required",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "string_type": "must be a string",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "string_too_short": "must not be empty",
    "too_short": "must not be empty",
}
_RANGE_RULES = {
    "greater_than_equal": ("ge", "must be at least {}"),
    "greater_than": ("gt", "must be greater than {}"),
    "less_than_equal": ("le", "must be at most {}"),
    "less_than": ("lt", "must be less than {}"),
    "string_too_long": ("max_length", "must be at most {} characters"),
}


def _translate(exc: ValidationError) -> str:
    """The first pydantic error as one line ``key.path: rule``; never the input value."""
    error = exc.errors(include_url=False, include_input=False)[0]
    loc = tuple(error["loc"])
    kind = error["type"]
    context = error.get("ctx") or {}
    cause = context.get("error")
    if isinstance(cause, _Rule):
        loc, rule = loc + cause.loc, cause.rule
    elif loc == ("targets",) and kind == "tuple_type":
        rule = "must be an array of tables: write [[targets]]"
    elif kind in _TYPE_RULES:
        rule = _TYPE_RULES[kind]
    elif kind in _RANGE_RULES:
        name, template = _RANGE_RULES[kind]
        rule = template.format(context.get(name))
    else:
        rule = str(error["msg"]).splitlines()[0]
    path = _key_path(loc)
    return f"{path}: {rule}" if path else rule


Timeout = Annotated[float, BeforeValidator(_timeout)]
Interval = Annotated[float, BeforeValidator(_interval)]
Money = Annotated[Decimal, BeforeValidator(_money)]
NonEmptyStr = Annotated[StrictStr, AfterValidator(_non_empty)]
EnvName = Annotated[StrictStr, AfterValidator(_env_name)]


class _Model(BaseModel):
    # hide_input_in_errors: a raw pydantic error must never carry a value
    # (an inline key, a password in a URL) even if someone prints it.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


def _base_dir(info: ValidationInfo) -> Path | None:
    context = info.context or {}
    return context.get("base_dir")


def _resolve_file(value: str | None, info: ValidationInfo) -> str | None:
    if value is None:
        return None
    try:
        path = Path(value).expanduser()
    except RuntimeError:  # "~user/..." naming a user this system does not know
        raise _Rule("cannot expand ~: no such user or home directory") from None
    base = _base_dir(info)
    if not path.is_absolute() and base is not None:
        path = base / path
    return str(path)


class Price(_Model):
    """USD per million tokens; TOML floats go through ``str()`` so 0.1 stays 0.1."""

    input: Money = Field(ge=0)
    output: Money = Field(ge=0)


class BudgetConfig(_Model):
    """The probes' own spend cap per UTC day; ``None`` means no cap."""

    daily_usd: Money | None = Field(default=None, gt=0)
    daily_tokens: StrictInt | None = Field(default=None, gt=0)


class MonitorConfig(_Model):
    """The ``[monitor]`` table: where this instance runs, stores and listens."""

    location: NonEmptyStr = Field(default="default", max_length=64)
    # validate_default: the env override and path resolution apply to the default too.
    database_url: StrictStr = Field(default="sqlite:///nexomon.db", validate_default=True)
    listen: StrictStr = "127.0.0.1:9464"
    retention_days: StrictInt = Field(default=30, ge=1)
    metrics_token_env: EnvName | None = None
    spool_dir: NonEmptyStr | None = None

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str, info: ValidationInfo) -> str:
        context = info.context or {}
        override = context.get("database_url_override")
        if override:
            return _database_url(override, None, from_env=DATABASE_URL_ENV)
        return _database_url(value, _base_dir(info))

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        _listen_parts(value)
        return value

    @field_validator("spool_dir")
    @classmethod
    def _spool_dir(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _resolve_file(value, info)

    @property
    def listen_host(self) -> str:
        """The host to bind, IPv6 brackets removed (``"::1"``)."""
        return _listen_parts(self.listen)[0]

    @property
    def listen_port(self) -> int:
        """The TCP port to bind (0 picks a free one)."""
        return _listen_parts(self.listen)[1]

    @property
    def database_url_redacted(self) -> str:
        """The database URL with any password replaced by ``***``, for logs."""
        from sqlalchemy.engine import make_url

        return make_url(self.database_url).render_as_string(hide_password=True)

    def __repr_args__(self) -> Any:
        for key, value in super().__repr_args__():
            yield key, (self.database_url_redacted if key == "database_url" else value)


class TargetConfig(_Model):
    """One ``[[targets]]`` table: a gateway to probe and how to authenticate."""

    name: StrictStr
    base_url: StrictStr
    api_key_env: EnvName | None = None
    api_key_file: NonEmptyStr | None = None
    timeout: Timeout = 30.0
    models_interval: Interval = 60.0
    chat_interval: Interval = 300.0
    # "*" stands for every model /models lists; ids next to it are probed first.
    models: tuple[NonEmptyStr, ...] = ("*",)
    max_models: StrictInt = Field(default=100, ge=1, le=10000)
    max_tokens: StrictInt = Field(default=16, ge=1, le=4096)
    prompt: NonEmptyStr = "Reply with OK."
    max_body_bytes: StrictInt = Field(default=1048576, ge=1024)
    pricing: dict[StrictStr, Price] = Field(default_factory=dict)

    # Where this target came from, for api_key() messages; set by Config.
    _source: Path = PrivateAttr(default=Path(DEFAULT_PATH))
    _index: int = PrivateAttr(default=0)

    @model_validator(mode="before")
    @classmethod
    def _no_inline_key(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "api_key" in data:
            raise _Rule(_INLINE_KEY, "api_key")
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise _Rule("must use only lowercase letters, digits, _ and - ([a-z0-9_-]+)")
        return value

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        return _base_url(value)

    @field_validator("api_key_file")
    @classmethod
    def _api_key_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _resolve_file(value, info)

    @field_validator("models")
    @classmethod
    def _models(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise _Rule('must not be empty; use ["*"] for every listed model')
        seen: set[str] = set()
        for index, model in enumerate(value):
            if model in seen:
                raise _Rule(f'duplicate model "{model}"', index)
            seen.add(model)
        return value

    @model_validator(mode="after")
    def _one_key_source(self) -> TargetConfig:
        if self.api_key_env is not None and self.api_key_file is not None:
            raise _Rule("set only one of api_key_env or api_key_file")
        if self.api_key_env is None and self.api_key_file is None:
            raise _Rule('an API key is required: set api_key_env = "NAME" or api_key_file = "PATH"')
        return self

    def api_key(self) -> str:
        """Read the key now from the environment or the file, whitespace stripped.

        Raises ConfigError naming the variable or file (never the key) when it
        is unset, unreadable, empty, or not a single header-safe token.
        """
        where = f"{self._source}: targets[{self._index}]"
        if self.api_key_env is not None:
            origin = f"{where}.api_key_env: environment variable {self.api_key_env}"
            raw = os.environ.get(self.api_key_env)
            if raw is None:
                raise ConfigError(f"{origin} is not set")
        else:
            origin = f"{where}.api_key_file: {self.api_key_file}"
            try:
                raw = Path(str(self.api_key_file)).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"{origin}: cannot read: {exc.strerror}") from None
            except UnicodeDecodeError:
                raise ConfigError(f"{origin}: is not UTF-8 text") from None
        key = raw.strip()
        if not key:
            raise ConfigError(f"{origin} is empty")
        # httpx would reject such a header and might echo it; fail here, silently.
        # Non-ASCII too: an HTTP header value is ASCII, httpx raises on anything else.
        if not key.isascii() or not key.isprintable() or any(ch.isspace() for ch in key):
            raise ConfigError(f"{origin} must hold one key without spaces or control characters")
        return key

    def price(self, model: str, default: Mapping[str, Price]) -> Price | None:
        """The target's own price for ``model``, else ``default``'s, else None."""
        found = self.pricing.get(model)
        return found if found is not None else default.get(model)


class Config(_Model):
    """The whole file. ``source`` is the path it was loaded from."""

    source: Path = Path(DEFAULT_PATH)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    targets: tuple[TargetConfig, ...] = Field(default=(), validate_default=True)
    pricing: dict[StrictStr, Price] = Field(default_factory=dict)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)

    @field_validator("targets")
    @classmethod
    def _targets(cls, value: tuple[TargetConfig, ...]) -> tuple[TargetConfig, ...]:
        if not value:
            raise _Rule("at least one [[targets]] table is required")
        seen: set[str] = set()
        for index, target in enumerate(value):
            if target.name in seen:
                raise _Rule(f'duplicate target name "{target.name}"', index, "name")
            seen.add(target.name)
        return value

    def model_post_init(self, context: Any, /) -> None:
        for index, target in enumerate(self.targets):
            target._source = self.source
            target._index = index

    def target(self, name: str) -> TargetConfig:
        """The target called ``name``; ConfigError listing the names if none is."""
        for target in self.targets:
            if target.name == name:
                return target
        names = ", ".join(t.name for t in self.targets)
        raise ConfigError(f"{self.source}: no target named {name!r} (targets: {names})")


def resolve_path(cli_path: str | None) -> Path:
    """``-c PATH`` if given, else ``$NEXOMON_CONFIG`` if set, else ``./nexomon.toml``."""
    if cli_path:
        return Path(cli_path)
    from_env = os.environ.get(PATH_ENV)
    if from_env:
        return Path(from_env)
    return Path(DEFAULT_PATH)


def load(path: str | Path, *, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the TOML file at ``path``.

    ``env`` (default ``os.environ``) supplies ``NEXOMON_DATABASE_URL``.
    Raises ConfigError with one line ``FILE: key.path: rule``.
    """
    source = Path(path)
    environ = os.environ if env is None else env
    try:
        with source.open("rb") as handle:
            raw = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read config: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: cannot read config: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    raw.setdefault("monitor", {})  # so the env override and path resolution always run
    for key in raw:
        if key not in _TOP_LEVEL_KEYS:
            raise ConfigError(f"{source}: {_key_path((key,))}: unknown key")
    context = {
        "base_dir": source.absolute().parent,
        "database_url_override": environ.get(DATABASE_URL_ENV) or None,
    }
    try:
        return Config.model_validate({**raw, "source": source}, context=context)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_translate(exc)}") from None
