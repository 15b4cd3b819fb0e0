"""Property-based config tests: any file either loads or fails with one ConfigError line.

Hypothesis writes TOML (and non-TOML) files built from the real key names
mixed with random keys, random value types, durations, nested tables and
unicode, and mutations of a valid config. The contract under test
(``monitor.config.model.load``): the result is a ``Config``, or a ``ConfigError``
whose message is one line starting with the file path; never any other
exception (a traceback for the user). ``parse_duration`` raises nothing but
``ValueError``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from monitor.config.model import Config, load, parse_duration
from monitor.errors import ConfigError

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

MONITOR_KEYS = (
    "location",
    "database_url",
    "listen",
    "retention_days",
    "metrics_token_env",
    "spool_dir",
)
TARGET_KEYS = (
    "name",
    "base_url",
    "api_key_env",
    "api_key_file",
    "api_key",
    "timeout",
    "models_interval",
    "chat_interval",
    "models",
    "max_models",
    "max_tokens",
    "prompt",
    "max_body_bytes",
    "pricing",
)
BUDGET_KEYS = ("daily_usd", "daily_tokens")
PRICE_KEYS = ("input", "output")
TOP_KEYS = ("monitor", "targets", "pricing", "budget")

# -- values -------------------------------------------------------------------------------
texts = st.text(max_size=30)
# tomllib reads integers of any size, far beyond TOML's 64 bits.
big_ints = st.integers(min_value=-(10**400), max_value=10**400)
durations = st.one_of(
    st.from_regex(r"\A-?[0-9]{0,4}(\.[0-9]{0,3})?\s?(ms|s|m|h|d|x|)?([0-9]{1,3}(ms|s|m|h))?\Z"),
    st.sampled_from(["30s", "5m", "1h30m", "0", "0.5s", "", " ", "1e3", "nan", "inf", "-1s"]),
    st.integers(min_value=-(10**30), max_value=10**30),
    big_ints,
    st.floats(allow_nan=True, allow_infinity=True),
)
urls = st.one_of(
    st.sampled_from(
        [
            "http://127.0.0.1:8080/v1",
            "https://api.nexorouter.com/v1",
            "http://user:pw@host/v1",
            "http://[::1]:99999/v1",
            "http://host/v1?x=1",
            "ftp://host",
            "sqlite:///nexomon.db",
            "sqlite:///:memory:",
            "postgresql+psycopg://u:p@h/db",
            "postgresql://h:notaport/db",
            "://",
            "~/x",
            "~nosuchuser_zz/x",
        ]
    ),
    st.builds(lambda s: f"http://{s}/v1", texts),
    st.builds(lambda s: f"sqlite:///{s}", texts),
    st.builds(lambda s: f"{s}://{s}", texts),
)
paths = st.one_of(
    st.sampled_from(["api.key", "/run/secrets/k", "~/k", "~nosuchuser_zz/k", "~", "", " "]),
    texts,
    st.builds(lambda s: f"~{s}/k", texts),
)
scalars = st.one_of(
    texts,
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    big_ints,
    paths,
    st.floats(allow_nan=True, allow_infinity=True),
    st.datetimes(timezones=st.none() | st.just(dt.UTC)),
    st.dates(),
    st.times(),
    durations,
    urls,
)


def any_values(depth: int = 2) -> st.SearchStrategy[Any]:
    if depth == 0:
        return scalars
    inner = any_values(depth - 1)
    return st.one_of(
        scalars,
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(texts, st.sampled_from(TARGET_KEYS)), inner, max_size=4),
    )


values = any_values()


def table(keys: tuple[str, ...], plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Dicts over real key names (and some random ones) with plausible or random values."""
    key = st.one_of(st.sampled_from(keys), st.sampled_from(keys), texts)
    return st.dictionaries(key, st.one_of(plausible, values), max_size=len(keys) + 2)


prices = st.dictionaries(
    st.one_of(st.sampled_from(PRICE_KEYS), texts),
    st.one_of(
        st.decimals(allow_nan=False).map(str),
        st.floats(),
        st.integers(min_value=-(10**20), max_value=10**20),
        values,
    ),
    max_size=3,
)
pricing = st.dictionaries(st.one_of(st.sampled_from(["sim-fast", "m"]), texts), prices, max_size=3)
plausible = st.one_of(durations, urls, paths, st.lists(texts, max_size=3), big_ints, pricing)
configs = st.fixed_dictionaries(
    {},
    optional={
        "monitor": st.one_of(table(MONITOR_KEYS, plausible), values),
        "targets": st.one_of(st.lists(table(TARGET_KEYS, plausible), max_size=3), values),
        "pricing": st.one_of(pricing, values),
        "budget": st.one_of(table(BUDGET_KEYS, plausible), values),
        "extra": values,
    },
)

VALID: dict[str, Any] = {
    "monitor": {"location": "here", "database_url": "sqlite:///x.db", "listen": "127.0.0.1:0"},
    "targets": [
        {
            "name": "t",
            "base_url": "http://127.0.0.1:8080/v1",
            "api_key_env": "KEY",
            "timeout": "3s",
            "models": ["*"],
            "pricing": {"m": {"input": 0.1, "output": 0.4}},
        }
    ],
    "pricing": {"sim-fast": {"input": 1, "output": 2}},
    "budget": {"daily_usd": 1.0},
}


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """The valid config with one value replaced, one key removed or one key added."""
    import copy

    doc = copy.deepcopy(VALID)
    section = draw(st.sampled_from(["monitor", "target", "price", "budget"]))
    holder = {
        "monitor": doc["monitor"],
        "target": doc["targets"][0],
        "price": doc["targets"][0]["pricing"]["m"],
        "budget": doc["budget"],
    }[section]
    action = draw(st.sampled_from(["replace", "remove", "add"]))
    if action == "remove" and holder:
        del holder[draw(st.sampled_from(sorted(holder)))]
    elif action == "add":
        holder[draw(texts)] = draw(values)
    elif holder:
        holder[draw(st.sampled_from(sorted(holder)))] = draw(st.one_of(plausible, values))
    return doc


# -- a small TOML writer (tomllib reads, it does not write) -----------------------------------
def _string(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_string(str(k))} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def to_toml(doc: dict[str, Any], headers: bool) -> str:
    """TOML text for ``doc``; with ``headers`` tables become [t] and lists of tables [[t]]."""
    lines: list[str] = []
    sections: list[str] = []
    for key, value in doc.items():
        name = _string(key)
        if headers and isinstance(value, dict):
            body = "".join(f"{_string(str(k))} = {_value(v)}\n" for k, v in value.items())
            sections.append(f"[{name}]\n{body}")
        elif (
            headers
            and isinstance(value, list)
            and value
            and all(isinstance(v, dict) for v in value)
        ):
            for item in value:
                body = "".join(f"{_string(str(k))} = {_value(v)}\n" for k, v in item.items())
                sections.append(f"[[{name}]]\n{body}")
        else:
            lines.append(f"{name} = {_value(value)}")
    return "\n".join(lines) + "\n" + "\n".join(sections)


# -- the property ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("props")


def check_load(path: Path, data: bytes) -> Config | None:
    """Write ``data`` to ``path`` and load it under the contract; returns the Config if any."""
    path.write_bytes(data)
    try:
        config = load(path, env={})
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message and "\r" not in message, message
        assert message.startswith(f"{path}: "), message
        return None
    assert isinstance(config, Config)
    return config


def _valid_with(**target: Any) -> dict[str, Any]:
    """VALID with target keys replaced (a None value removes the key)."""
    merged = {**VALID["targets"][0], **target}
    return {**VALID, "targets": [{k: v for k, v in merged.items() if v is not None}]}


@SETTINGS
@given(doc=st.one_of(configs, mutated()), headers=st.booleans())
@example(doc=_valid_with(timeout=10**400), headers=True)  # float() overflows
@example(doc=_valid_with(chat_interval=-(10**400)), headers=False)
@example(doc=_valid_with(api_key_env=None, api_key_file="~nosuchuser_zz/k"), headers=True)
@example(
    doc={"monitor": {"spool_dir": "~nosuchuser_zz/spool"}, "targets": VALID["targets"]},
    headers=True,
)
def test_generated_configs_load_or_raise_one_config_error_line(
    config_dir: Path, doc: dict[str, Any], headers: bool
) -> None:
    check_load(config_dir / "nexomon-ü.toml", to_toml(doc, headers).encode("utf-8"))


@SETTINGS
@given(text=st.text(max_size=200))
@example(text='[monitor]\nlocation = "x"\n[monitor]\n')  # a table defined twice
@example(text="targets = 1\n[[targets]]\n")
def test_arbitrary_text_loads_or_raises_one_config_error_line(config_dir: Path, text: str) -> None:
    check_load(config_dir / "text.toml", text.encode("utf-8", "surrogatepass"))


@SETTINGS
@given(data=st.binary(max_size=200))
@example(data=b"\xff\xfe[monitor]")
def test_arbitrary_bytes_load_or_raise_one_config_error_line(config_dir: Path, data: bytes) -> None:
    check_load(config_dir / "bytes.toml", data)


def test_the_valid_base_config_loads(config_dir: Path) -> None:
    """The mutation seed itself is valid, so mutations start from a loading config."""
    for headers in (False, True):
        config = check_load(config_dir / "valid.toml", to_toml(VALID, headers).encode())
        assert config is not None and config.targets[0].name == "t"


@SETTINGS
@given(value=st.one_of(values, durations, st.integers(), st.none(), st.binary()))
@example(value=10**400)
@example(value="9" * 400 + "h")
@example(value=-(10**400))
def test_parse_duration_raises_only_value_error(value: Any) -> None:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(seconds, float) and math.isfinite(seconds) and seconds >= 0
