"""The typed config tree, read from TOML and validated once at load.

Contract:

- ``resolve_path(cli_path)`` (from ``paths.py``): ``-c PATH``, else
  ``$NEXOMON_CONFIG``, else ``./nexomon.toml``.
- ``load(path)`` returns a frozen :class:`Config` or raises
  :class:`~monitor.errors.ConfigError` worded on one line as
  ``FILE: key.path: rule`` (``nexomon.toml: targets[0].chat_interval: must
  be at least 1s``). Key paths write list items as ``[N]`` and pricing model
  ids always double-quoted (``pricing."sim-fast".input``).
- Unknown keys are refused everywhere; every model is frozen.
- ``$NEXOMON_DATABASE_URL``, when set and non-empty, replaces
  ``monitor.database_url``. Relative paths never depend on the working
  directory: data paths (a relative SQLite database, ``spool_dir``, the
  default spool) resolve against the data directory (``$NEXOMON_DATA_DIR``,
  else ``monitor.data_dir``), else the config file's directory;
  ``api_key_file`` against the config file's directory (see ``paths.py``).
- API keys are never part of the config: a target names an environment
  variable or a file, and :meth:`TargetConfig.api_key` reads it at call time.
  No error message and no ``repr()`` ever contains a key; the database URL's
  password is masked in ``repr()``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    PrivateAttr,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from monitor.config.durations import format_duration, parse_duration
from monitor.config.keys import read_api_key
from monitor.config.paths import (
    DATA_DIR_ENV,
    DEFAULT_PATH,
    PATH_ENV,
    data_home,
    data_path,
    default_spool_dir,
    resolve_data_dir,
    resolve_path,
)
from monitor.config.rules import (
    _INLINE_KEY,
    _NAME,
    _TOP_LEVEL_KEYS,
    INTERVAL_KEYS,
    MAX_PROMPT_CHARS,
    EnvName,
    Interval,
    Money,
    NonEmptyStr,
    Timeout,
    _base_url,
    _database_url,
    _key_path,
    _listen_parts,
    _Model,
    _resolve_file,
    _Rule,
    _translate,
    default_timeout,
)
from monitor.errors import ConfigError

__all__ = [
    "DATABASE_URL_ENV",
    "DATA_DIR_ENV",
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

DATABASE_URL_ENV = "NEXOMON_DATABASE_URL"
DEFAULT_TIMEOUT_S = 30.0


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
    # Before database_url and spool_dir, which resolve against it (validators run in
    # field order); validate_default: $NEXOMON_DATA_DIR applies with no key too.
    data_dir: NonEmptyStr | None = Field(default=None, validate_default=True)
    # validate_default: the env override and path resolution apply to the default too.
    database_url: StrictStr = Field(default="sqlite:///nexomon.db", validate_default=True)
    listen: StrictStr = "127.0.0.1:9464"
    retention_days: StrictInt = Field(default=30, ge=1)
    metrics_token_env: EnvName | None = None
    # /api/v1/status shows errors, request ids, tokens and cost: it asks for the
    # metrics token, or for this one when set (to open it to other readers).
    status_token_env: EnvName | None = None
    spool_dir: NonEmptyStr | None = Field(default=None, validate_default=True)
    # The status page at / and its badges; unset: "token" with a metrics token, else public.
    status_page: Literal["public", "token", "off"] | None = None
    badges: Literal["public", "token", "off"] | None = None
    # "compact" for very large catalogs (thousands of models): latency histograms
    # per (target, probe) instead of per model, and a per-model series that would
    # start at 0 appears with its first non-zero value (monitor.exporter.exporter).
    model_metrics: Literal["full", "compact"] = "full"

    @field_validator("data_dir")
    @classmethod
    def _data_dir(cls, value: str | None, info: ValidationInfo) -> str | None:
        return resolve_data_dir(value, info)

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str, info: ValidationInfo) -> str:
        context = info.context or {}
        override = context.get("database_url_override")
        if override:
            return _database_url(override, None, from_env=DATABASE_URL_ENV)
        return _database_url(value, data_home(info))

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        _listen_parts(value)
        return value

    @field_validator("spool_dir")
    @classmethod
    def _spool_dir(cls, value: str | None, info: ValidationInfo) -> str | None:
        home, data = data_home(info), info.data
        if value is None:
            return default_spool_dir(data.get("database_url"), home, data.get("location"))
        return data_path(value, _resolve_file(value, info), home)

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
    # Unset, it is 30s or the shorter interval when that is less (see _default_timeout).
    timeout: Timeout = DEFAULT_TIMEOUT_S
    models_interval: Interval = 60.0
    chat_interval: Interval = 300.0
    # Opt-in probes (issue 18), off while unset: the documented-contract checks
    # (monitor.probes.contract) and the streaming chat probe (monitor.probes.stream).
    contract_interval: Interval | None = None
    stream_interval: Interval | None = None
    # The status page shows an ok model slower than this as "degraded"; unset: never.
    degraded_latency: Timeout | None = None
    # "*" stands for every model /models lists; ids next to it are probed first.
    models: tuple[NonEmptyStr, ...] = ("*",)
    max_models: StrictInt = Field(default=100, ge=1, le=10000)
    max_tokens: StrictInt = Field(default=16, ge=1, le=4096)
    prompt: NonEmptyStr = Field(default="Reply with OK.", max_length=MAX_PROMPT_CHARS)
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

    @model_validator(mode="before")
    @classmethod
    def _default_timeout(cls, data: Any) -> Any:
        return default_timeout(data, DEFAULT_TIMEOUT_S)

    @model_validator(mode="after")
    def _timeout_within_intervals(self) -> TargetConfig:
        # A probe that may outlast its interval overlaps its next run (a misfire).
        for key in INTERVAL_KEYS:
            interval = getattr(self, key)
            if interval is not None and self.timeout > interval:
                raise _Rule(
                    f"must be at most {key} ({format_duration(interval)}): "
                    "a probe must end before its next run",
                    "timeout",
                )
        return self

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
        return read_api_key(where, self.api_key_env, self.api_key_file)

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


def load(path: str | Path, *, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the TOML file at ``path``.

    ``env`` (default ``os.environ``) supplies ``NEXOMON_DATABASE_URL`` and
    ``NEXOMON_DATA_DIR``.
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
    except RecursionError:
        raise ConfigError(f"{source}: invalid TOML: {_TOO_DEEP}") from None
    raw.setdefault("monitor", {})  # so the env override and path resolution always run
    for key in raw:
        if key not in _TOP_LEVEL_KEYS:
            raise ConfigError(f"{source}: {_key_path((key,))}: unknown key")
    context = {
        "base_dir": source.absolute().parent,
        "database_url_override": environ.get(DATABASE_URL_ENV) or None,
        "data_dir_override": environ.get(DATA_DIR_ENV) or None,
    }
    try:
        return Config.model_validate({**raw, "source": source}, context=context)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_translate(exc)}") from None
    except RecursionError:
        raise ConfigError(f"{source}: {_TOO_DEEP}") from None


_TOO_DEEP = "tables or arrays are nested too deeply"
