"""The rules behind config/model.py: value validators and the error translation.

Each validator takes a raw TOML value and returns the typed value or raises
``_Rule`` (a ValueError) whose text is the rule as users read it
(``must be at least 1s``); ``_translate`` turns pydantic's ValidationError
into the one line ``key.path: rule``. model.py holds the models that use
them and ``load``.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import stat
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
    StrictStr,
    ValidationError,
    ValidationInfo,
)

from monitor.config.database_urls import plain_url
from monitor.config.durations import format_duration, parse_duration

_log = logging.getLogger("nexomon.config")
_NAME = re.compile(r"[a-z0-9_-]+")
_TOP_LEVEL_KEYS = ("monitor", "targets", "pricing", "budget")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")
_MAX_TIMEOUT = 600.0
_MAX_INTERVAL = 86400.0
MAX_PROMPT_CHARS = 4096
# One DNS label: letters, digits, "-" inside (and "_", which real gateways' hosts use).
_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_HOST_RULE = (
    "must name a valid host: an IP address or dot-separated labels of letters, digits and -"
)
_DURATION = 'must be a duration: seconds, or a string like "30s", "5m", "1h"'
_URL = 'must be an http:// or https:// URL, e.g. "https://api.nexorouter.com/v1"'
_DB_URL = (
    'must be a database URL, e.g. "sqlite:///nexomon.db" or "postgresql+psycopg://user@host/db"'
)
_DB_BACKEND = (
    "must be a SQLite or PostgreSQL URL (the supported databases), "
    'e.g. "sqlite:///nexomon.db" or "postgresql://user@host/db"'
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
    if seconds > _MAX_INTERVAL:
        raise _Rule(f"must be at most {format_duration(_MAX_INTERVAL)}")
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


def _valid_host(host: str) -> bool:
    """An IP address, or a DNS name of non-empty labels (one trailing dot allowed)."""
    if _is_ip(host):
        return True
    try:
        ascii_host = host.encode("idna").decode("ascii")  # an internationalized name
    except UnicodeError:
        return False
    labels = ascii_host.removesuffix(".").split(".")
    return len(ascii_host) <= 253 and all(_LABEL.fullmatch(label) for label in labels)


def _base_url(value: str) -> str:
    text = value.strip()
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise _Rule("must not contain spaces or control characters")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise _Rule(_URL) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _Rule(_URL)
    if not _valid_host(parts.hostname):
        raise _Rule(_HOST_RULE)
    if parts.username is not None or parts.password is not None:
        raise _Rule("must not contain credentials; use api_key_env or api_key_file")
    if parts.query or parts.fragment:
        raise _Rule("must not have a query string or fragment")
    return value.strip().rstrip("/")


def _database_url(value: str, base_dir: Path | None, from_env: str | None = None) -> str:
    """Check ``value`` parses; make a relative SQLite file path absolute under base_dir."""
    plain = plain_url(value, base_dir)
    return _sqlalchemy_database_url(value, base_dir, from_env) if plain is None else plain


def _sqlalchemy_database_url(value: str, base_dir: Path | None, from_env: str | None) -> str:
    """``_database_url`` through SQLAlchemy's own parse: every form it knows."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(value)
    except (ArgumentError, ValueError):
        # Never echo the URL: it may hold a password.
        prefix = f"{from_env} " if from_env else ""
        raise _Rule(prefix + _DB_URL) from None
    if url.get_backend_name() not in ("sqlite", "postgresql", "postgres"):  # postgres: an alias
        raise _Rule((f"{from_env} " if from_env else "") + _DB_BACKEND)
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


# Every interval of a target; a probe must end before its job's next run.
INTERVAL_KEYS = ("models_interval", "chat_interval", "contract_interval", "stream_interval")


def default_timeout(data: Any, default: float) -> Any:
    """A target table with no ``timeout``: ``default``, or the shorter interval when less.

    Intervals that do not parse are left for their own validators to word.
    """
    if not isinstance(data, Mapping) or "timeout" in data:
        return data
    bound = default
    for key in INTERVAL_KEYS:
        if key in data:
            try:
                bound = min(bound, _seconds(data[key]))
            except _Rule:
                return data
    return {**data, "timeout": bound} if 0 < bound < default else data


def warn_if_shared(path: Path, origin: str) -> None:
    """Log one WARNING when the key file is readable by group or others (as ssh does).

    Only a warning: a key file shared with a service group is a choice; a file
    that cannot be stat-ed is left for the read to report.
    """
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if stat.S_ISREG(mode) and mode & 0o044:
        _log.warning(
            "%s is readable by group or others (mode %04o); run chmod 600 on it",
            origin,
            stat.S_IMODE(mode),
        )
