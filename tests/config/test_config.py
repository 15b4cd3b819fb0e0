"""Config loading: every rule and its exact one-line message, keys, paths, examples."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pydantic
import pytest

from monitor.config.durations import format_duration
from monitor.config.model import (
    Config,
    MonitorConfig,
    Price,
    TargetConfig,
    load,
    parse_duration,
    resolve_path,
)
from monitor.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SECRET = "sk-live-TOPSECRET-0123456789"
KEY_ENV = "NEXOMON_TEST_API_KEY"


def target_toml(*lines: str, name: str = "t", key: str = f'api_key_env = "{KEY_ENV}"') -> str:
    """A valid [[targets]] table plus ``lines``."""
    body = [
        "[[targets]]",
        f'name = "{name}"',
        'base_url = "http://127.0.0.1:8080/v1"',
        key,
        *lines,
    ]
    return "\n".join(line for line in body if line) + "\n"


def write(tmp_path: Path, text: str, name: str = "nexomon.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load(path, env={})
    return str(info.value)


INLINE = (
    "targets[0].api_key: inline API keys are not allowed; put the key in an environment "
    'variable (api_key_env = "NAME") or a file (api_key_file = "PATH")'
)
ENV_NAME_RULE = "must be the name of an environment variable (letters, digits and _), not its value"
DURATION_RULE = 'must be a duration: seconds, or a string like "30s", "5m", "1h"'
URL_RULE = 'must be an http:// or https:// URL, e.g. "https://api.nexorouter.com/v1"'
DB_RULE = (
    'must be a database URL, e.g. "sqlite:///nexomon.db" or "postgresql+psycopg://user@host/db"'
)
PRICE = "input = 1\noutput = 2"
HOST_RULE = "must name a valid host: an IP address or dot-separated labels of letters, digits and -"
SPACE_RULE = "must not contain spaces or control characters"

# (case id, file text, message after "FILE: ")
INVALID = [
    ("unknown_top_level_key", "[monitr]\n" + target_toml(), "monitr: unknown key"),
    (
        "unknown_monitor_key",
        '[monitor]\nlisen = "x"\n' + target_toml(),
        "monitor.lisen: unknown key",
    ),
    ("unknown_target_key", target_toml('modles = ["a"]'), "targets[0].modles: unknown key"),
    (
        "unknown_price_key",
        target_toml() + f'[pricing."m"]\n{PRICE}\ncached = 1\n',
        'pricing."m".cached: unknown key',
    ),
    ("unknown_budget_key", target_toml() + "[budget]\ndaily = 1\n", "budget.daily: unknown key"),
    ("inline_api_key", target_toml(f'api_key = "{SECRET}"'), INLINE),
    (
        "no_targets",
        '[monitor]\nlocation = "x"\n',
        "targets: at least one [[targets]] table is required",
    ),
    ("empty_targets", "targets = []\n", "targets: at least one [[targets]] table is required"),
    (
        "targets_as_table",
        '[targets]\nname = "t"\n',
        "targets: must be an array of tables: write [[targets]]",
    ),
    ("target_not_table", "targets = [1]\n", "targets[0]: must be a table"),
    ("monitor_not_table", "monitor = 5\n" + target_toml(), "monitor: must be a table"),
    (
        "missing_name",
        '[[targets]]\nbase_url = "http://x"\napi_key_env = "K"\n',
        "targets[0].name: is required",
    ),
    (
        "missing_base_url",
        '[[targets]]\nname = "t"\napi_key_env = "K"\n',
        "targets[0].base_url: is required",
    ),
    (
        "bad_name",
        target_toml(name="Big Name"),
        "targets[0].name: must use only lowercase letters, digits, _ and - ([a-z0-9_-]+)",
    ),
    ("duplicate_name", target_toml() + target_toml(), 'targets[1].name: duplicate target name "t"'),
    (
        "name_not_string",
        target_toml(name="t").replace('name = "t"', "name = 7"),
        "targets[0].name: must be a string",
    ),
    (
        "base_url_scheme",
        target_toml().replace("http://127", "ftp://127"),
        f"targets[0].base_url: {URL_RULE}",
    ),
    (
        "base_url_no_host",
        target_toml().replace("http://127.0.0.1:8080/v1", "http:///v1"),
        f"targets[0].base_url: {URL_RULE}",
    ),
    (
        "base_url_credentials",
        target_toml().replace("http://", f"http://user:{SECRET}@"),
        "targets[0].base_url: must not contain credentials; use api_key_env or api_key_file",
    ),
    (
        "base_url_query",
        target_toml().replace("/v1", "/v1?x=1"),
        "targets[0].base_url: must not have a query string or fragment",
    ),
    (
        "no_key_source",
        target_toml(key=""),
        'targets[0]: an API key is required: set api_key_env = "NAME" or api_key_file = "PATH"',
    ),
    (
        "both_key_sources",
        target_toml('api_key_file = "k"'),
        "targets[0]: set only one of api_key_env or api_key_file",
    ),
    (
        "api_key_env_not_a_name",
        target_toml(key=f'api_key_env = "{SECRET}"'),
        f"targets[0].api_key_env: {ENV_NAME_RULE}",
    ),
    (
        "api_key_file_empty",
        target_toml(key='api_key_file = " "'),
        "targets[0].api_key_file: must not be empty",
    ),
    ("timeout_zero", target_toml("timeout = 0"), "targets[0].timeout: must be greater than 0s"),
    (
        "timeout_negative",
        target_toml("timeout = -5"),
        "targets[0].timeout: must be greater than 0s",
    ),
    ("timeout_too_long", target_toml('timeout = "11m"'), "targets[0].timeout: must be at most 10m"),
    (
        "timeout_not_duration",
        target_toml('timeout = "soon"'),
        f"targets[0].timeout: {DURATION_RULE}",
    ),
    ("timeout_bool", target_toml("timeout = true"), f"targets[0].timeout: {DURATION_RULE}"),
    ("timeout_nan", target_toml("timeout = nan"), f"targets[0].timeout: {DURATION_RULE}"),
    (
        "chat_interval_short",
        target_toml('chat_interval = "500ms"'),
        "targets[0].chat_interval: must be at least 1s",
    ),
    (
        "models_interval_short",
        target_toml("models_interval = 0.5"),
        "targets[0].models_interval: must be at least 1s",
    ),
    (
        "models_empty",
        target_toml("models = []"),
        'targets[0].models: must not be empty; use ["*"] for every listed model',
    ),
    (
        "models_duplicate",
        target_toml('models = ["a", "a"]'),
        'targets[0].models[1]: duplicate model "a"',
    ),
    ("models_not_list", target_toml('models = "*"'), "targets[0].models: must be a list"),
    ("models_item_type", target_toml("models = [1]"), "targets[0].models[0]: must be a string"),
    ("models_item_empty", target_toml('models = [""]'), "targets[0].models[0]: must not be empty"),
    ("max_models_low", target_toml("max_models = 0"), "targets[0].max_models: must be at least 1"),
    (
        "max_models_high",
        target_toml("max_models = 10001"),
        "targets[0].max_models: must be at most 10000",
    ),
    (
        "max_tokens_string",
        target_toml('max_tokens = "16"'),
        "targets[0].max_tokens: must be an integer",
    ),
    (
        "max_tokens_float",
        target_toml("max_tokens = 16.0"),
        "targets[0].max_tokens: must be an integer",
    ),
    (
        "max_tokens_bool",
        target_toml("max_tokens = true"),
        "targets[0].max_tokens: must be an integer",
    ),
    (
        "max_tokens_high",
        target_toml("max_tokens = 4097"),
        "targets[0].max_tokens: must be at most 4096",
    ),
    ("max_tokens_low", target_toml("max_tokens = 0"), "targets[0].max_tokens: must be at least 1"),
    ("prompt_blank", target_toml('prompt = "  "'), "targets[0].prompt: must not be empty"),
    (
        "max_body_bytes_low",
        target_toml("max_body_bytes = 1023"),
        "targets[0].max_body_bytes: must be at least 1024",
    ),
    (
        "target_price_negative",
        target_toml('[targets.pricing."m"]', "input = -1", "output = 1"),
        'targets[0].pricing."m".input: must be at least 0',
    ),
    (
        "price_not_number",
        target_toml() + '[pricing."m"]\ninput = 1\noutput = "abc"\n',
        'pricing."m".output: must be a number',
    ),
    (
        "price_bool",
        target_toml() + '[pricing."m"]\ninput = true\noutput = 1\n',
        'pricing."m".input: must be a number',
    ),
    (
        "price_nan",
        target_toml() + '[pricing."m"]\ninput = nan\noutput = 1\n',
        'pricing."m".input: must be a finite number',
    ),
    (
        "price_missing",
        target_toml() + '[pricing."m"]\ninput = 1\n',
        'pricing."m".output: is required',
    ),
    ("price_not_table", target_toml() + "[pricing]\nm = 1\n", 'pricing."m": must be a table'),
    ("pricing_not_table", "pricing = 1\n" + target_toml(), "pricing: must be a table"),
    (
        "listen_no_port",
        '[monitor]\nlisten = "localhost"\n' + target_toml(),
        'monitor.listen: must be HOST:PORT, e.g. "127.0.0.1:9464" or "[::1]:9464"',
    ),
    (
        "listen_port_range",
        '[monitor]\nlisten = "127.0.0.1:65536"\n' + target_toml(),
        "monitor.listen: port must be at most 65535",
    ),
    (
        "listen_bad_host",
        '[monitor]\nlisten = "bad host!:80"\n' + target_toml(),
        "monitor.listen: must be HOST:PORT with an IP address or host name",
    ),
    (
        "retention_low",
        "[monitor]\nretention_days = 0\n" + target_toml(),
        "monitor.retention_days: must be at least 1",
    ),
    (
        "database_url_invalid",
        '[monitor]\ndatabase_url = "nonsense"\n' + target_toml(),
        f"monitor.database_url: {DB_RULE}",
    ),
    (
        "database_url_other_backend",
        '[monitor]\ndatabase_url = "mysql://u@h/db"\n' + target_toml(),
        "monitor.database_url: must be a SQLite or PostgreSQL URL (the supported databases), "
        'e.g. "sqlite:///nexomon.db" or "postgresql://user@host/db"',
    ),
    (
        "location_empty",
        '[monitor]\nlocation = ""\n' + target_toml(),
        "monitor.location: must not be empty",
    ),
    (
        "location_long",
        f'[monitor]\nlocation = "{"x" * 65}"\n' + target_toml(),
        "monitor.location: must be at most 64 characters",
    ),
    (
        "metrics_token_env_name",
        '[monitor]\nmetrics_token_env = "a b"\n' + target_toml(),
        f"monitor.metrics_token_env: {ENV_NAME_RULE}",
    ),
    (
        "budget_usd_zero",
        target_toml() + "[budget]\ndaily_usd = 0\n",
        "budget.daily_usd: must be greater than 0",
    ),
    (
        "budget_tokens_negative",
        target_toml() + "[budget]\ndaily_tokens = -1\n",
        "budget.daily_tokens: must be greater than 0",
    ),
    (
        "budget_tokens_float",
        target_toml() + "[budget]\ndaily_tokens = 1.5\n",
        "budget.daily_tokens: must be an integer",
    ),
    # issue 16, point 3: hosts, timeouts within intervals, intervals, prompt, nesting.
    *[
        (
            f"base_url_host_{case}",
            target_toml().replace("http://127.0.0.1:8080/v1", url),
            f"targets[0].base_url: {rule}",
        )
        for case, url, rule in [
            ("empty_label", "http://api..example.com/v1", HOST_RULE),
            ("leading_dot", "http://.example.com/v1", HOST_RULE),
            ("space", "http://api example.com/v1", SPACE_RULE),
            ("trailing_garbage", "http://api.example.com/v1 junk", SPACE_RULE),
            ("tab", "http://api.example.com\\t/v1", SPACE_RULE),
            ("punctuation", "http://api!example.com/v1", HOST_RULE),
            ("port_garbage", "http://api.example.com:80x/v1", URL_RULE),
            ("long_label", f"http://{'a' * 64}.com/v1", HOST_RULE),
        ]
    ],
    (
        "timeout_over_models_interval",
        target_toml('timeout = "90s"', 'models_interval = "1m"', 'chat_interval = "5m"'),
        "targets[0].timeout: must be at most models_interval (1m): "
        "a probe must end before its next run",
    ),
    (
        "timeout_over_chat_interval",
        target_toml('timeout = "20s"', 'models_interval = "1m"', 'chat_interval = "10s"'),
        "targets[0].timeout: must be at most chat_interval (10s): "
        "a probe must end before its next run",
    ),
    (
        "models_interval_over_a_day",
        target_toml('models_interval = "25h"'),
        "targets[0].models_interval: must be at most 1d",
    ),
    (
        "chat_interval_over_a_day",
        target_toml("chat_interval = 86401"),
        "targets[0].chat_interval: must be at most 1d",
    ),
    (
        "prompt_too_long",
        target_toml(f'prompt = "{"x" * 4097}"'),
        "targets[0].prompt: must be at most 4096 characters",
    ),
    (
        "toml_nested_too_deeply",
        target_toml() + "x = " + "[" * 100_000 + "]" * 100_000 + "\n",
        "invalid TOML: tables or arrays are nested too deeply",
    ),
    (
        "toml_inline_tables_nested_too_deeply",
        target_toml() + "x = " + "{a = " * 5_000 + "1" + "}" * 5_000 + "\n",
        "invalid TOML: tables or arrays are nested too deeply",
    ),
    (
        "toml_syntax",
        'name "x"\n',
        "invalid TOML: Expected '=' after a key in a key/value pair (at line 1, column 6)",
    ),
]


@pytest.mark.parametrize(("text", "message"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_each_invalid_config_is_refused_with_its_exact_one_line_message(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    error = load_error(path)
    assert error == f"{path}: {message}"
    assert "\n" not in error
    assert SECRET not in error


def test_a_missing_file_is_reported_with_the_os_reason(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    assert load_error(path) == f"{path}: cannot read config: No such file or directory"


def test_a_non_utf8_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'name = "\xe9"\n')
    assert load_error(path) == f"{path}: cannot read config: not UTF-8 text"


def test_a_minimal_file_gets_every_default(tmp_path: Path) -> None:
    config = load(write(tmp_path, target_toml()), env={})
    target = config.targets[0]
    assert config.monitor.location == "default"
    assert config.monitor.listen == "127.0.0.1:9464"
    assert config.monitor.retention_days == 30
    assert config.monitor.metrics_token_env is None
    assert config.monitor.spool_dir is None
    assert (target.timeout, target.models_interval, target.chat_interval) == (30.0, 60.0, 300.0)
    assert target.models == ("*",)
    assert (target.max_models, target.max_tokens, target.max_body_bytes) == (100, 16, 1048576)
    assert target.prompt == "Reply with OK."
    assert target.pricing == {}
    assert config.pricing == {}
    assert (config.budget.daily_usd, config.budget.daily_tokens) == (None, None)


def test_values_are_normalised(tmp_path: Path) -> None:
    text = target_toml('timeout = "1m"', 'chat_interval = "1h30m"', 'models = ["b", "*"]')
    text = text.replace("/v1", "/v1/") + '[pricing."m"]\ninput = 0.1\noutput = "0.40"\n'
    text += "[budget]\ndaily_usd = 1.00\ndaily_tokens = 5000\n"
    config = load(write(tmp_path, text), env={})
    target = config.targets[0]
    assert target.base_url == "http://127.0.0.1:8080/v1"
    assert (target.timeout, target.chat_interval) == (60.0, 5400.0)
    assert target.models == ("b", "*")
    assert config.pricing["m"] == Price(input=Decimal("0.1"), output=Decimal("0.40"))
    assert config.budget.daily_usd == Decimal("1.00")
    assert config.budget.daily_tokens == 5000


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("127.0.0.1:9464", "127.0.0.1", 9464),
        ("[::1]:80", "::1", 80),
        ("localhost:0", "localhost", 0),
    ],
)
def test_listen_splits_into_host_and_port(listen: str, host: str, port: int) -> None:
    monitor = MonitorConfig(listen=listen)
    assert (monitor.listen_host, monitor.listen_port) == (host, port)


DURATIONS = [
    (30, 30.0),
    (2.5, 2.5),
    ("30", 30.0),
    ("2.5", 2.5),
    ("30s", 30.0),
    ("5m", 300.0),
    ("1h", 3600.0),
    ("250ms", 0.25),
    ("1h30m", 5400.0),
    ("1h 30m 15s", 5415.0),
    ("1.5h", 5400.0),
    ("7d", 604800.0),
    (" 10S ", 10.0),
    ("0s", 0.0),
]


@pytest.mark.parametrize(("value", "seconds"), DURATIONS)
def test_parse_duration_reads_seconds_and_units(value: int | float | str, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "s", "5x", "5 m s", "m5", "-5s", "1h-5m", "nan", True, None])
def test_parse_duration_refuses_anything_else(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "seconds"), [(-1, -1.0), (float("inf"), 0.0)])
def test_parse_duration_refuses_negative_and_infinite_numbers(value: float, seconds: float) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.25, "250ms"),
        (1, "1s"),
        (2.5, "2.5s"),
        (90, "1m30s"),
        (600, "10m"),
        (90061, "1d1h1m1s"),
    ],
)
def test_format_duration_is_compact(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_api_key_is_read_from_the_environment_at_call_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    path = write(tmp_path, target_toml())
    target = load(path, env={}).targets[0]
    with pytest.raises(ConfigError) as info:
        target.api_key()
    assert str(info.value) == (
        f"{path}: targets[0].api_key_env: environment variable {KEY_ENV} is not set"
    )
    monkeypatch.setenv(KEY_ENV, f"  {SECRET}\n")
    assert target.api_key() == SECRET
    monkeypatch.setenv(KEY_ENV, " ")
    with pytest.raises(ConfigError) as info:
        target.api_key()
    assert (
        str(info.value)
        == f"{path}: targets[0].api_key_env: environment variable {KEY_ENV} is empty"
    )


def test_api_key_errors_name_the_right_target_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTHER_KEY", raising=False)
    path = write(tmp_path, target_toml() + target_toml(name="u", key='api_key_env = "OTHER_KEY"'))
    with pytest.raises(ConfigError) as info:
        load(path, env={}).target("u").api_key()
    assert (
        str(info.value)
        == f"{path}: targets[1].api_key_env: environment variable OTHER_KEY is not set"
    )


def test_api_key_file_is_resolved_against_the_config_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    (conf_dir / "secrets").mkdir()
    (conf_dir / "secrets" / "gw.key").write_text(f"{SECRET}\n", encoding="utf-8")
    path = write(conf_dir, target_toml(key='api_key_file = "secrets/gw.key"'))
    monkeypatch.chdir(tmp_path)  # elsewhere: the file must still be found
    target = load(Path("conf") / "nexomon.toml", env={}).targets[0]
    assert target.api_key_file == str(conf_dir / "secrets" / "gw.key")
    assert target.api_key() == SECRET
    assert path.exists()


def test_api_key_file_problems_are_reported_without_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, target_toml(key='api_key_file = "gw.key"'))
    key_file = tmp_path / "gw.key"
    target = load(path, env={}).targets[0]
    cases = [
        (
            None,
            f"{path}: targets[0].api_key_file: {key_file}: cannot read: No such file or directory",
        ),
        ("\n \n", f"{path}: targets[0].api_key_file: {key_file} is empty"),
        (
            f"{SECRET} {SECRET}",
            f"{path}: targets[0].api_key_file: {key_file} must hold one key"
            " without spaces or control characters",
        ),
    ]
    for content, message in cases:
        if content is not None:
            key_file.write_text(content, encoding="utf-8")
        with pytest.raises(ConfigError) as info:
            target.api_key()
        assert str(info.value) == message
        assert SECRET not in str(info.value)


def test_a_relative_sqlite_path_is_resolved_against_the_config_directory(tmp_path: Path) -> None:
    config = load(write(tmp_path, target_toml()), env={})
    assert config.monitor.database_url == f"sqlite:///{tmp_path}/nexomon.db"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:////var/lib/nexomon.db",
        "postgresql+psycopg://u@h/db",
        "postgresql://u@h/db",
        "postgres://u@h/db",
    ],
)
def test_other_database_urls_are_kept_as_written(tmp_path: Path, url: str) -> None:
    config = load(write(tmp_path, f'[monitor]\ndatabase_url = "{url}"\n' + target_toml()), env={})
    assert config.monitor.database_url == url


def test_nexomon_database_url_wins_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, '[monitor]\ndatabase_url = "sqlite:///file.db"\n' + target_toml())
    monkeypatch.setenv("NEXOMON_DATABASE_URL", "postgresql+psycopg://env@db/nexomon")
    assert load(path).monitor.database_url == "postgresql+psycopg://env@db/nexomon"
    monkeypatch.setenv("NEXOMON_DATABASE_URL", "")  # empty counts as unset
    assert load(path).monitor.database_url == f"sqlite:///{tmp_path}/file.db"


def test_an_invalid_nexomon_database_url_is_named_without_its_value(tmp_path: Path) -> None:
    path = write(tmp_path, target_toml())
    with pytest.raises(ConfigError) as info:
        load(path, env={"NEXOMON_DATABASE_URL": f"not a url {SECRET}"})
    assert str(info.value) == f"{path}: monitor.database_url: NEXOMON_DATABASE_URL {DB_RULE}"


def test_resolve_path_prefers_cli_then_environment_then_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NEXOMON_CONFIG", raising=False)
    assert resolve_path(None) == Path("nexomon.toml")
    monkeypatch.setenv("NEXOMON_CONFIG", "/etc/nexomon/env.toml")
    assert resolve_path(None) == Path("/etc/nexomon/env.toml")
    assert resolve_path("cli.toml") == Path("cli.toml")


def test_the_nexorouter_example_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXOROUTER_API_KEY", SECRET)
    config = load(EXAMPLES / "nexomon.toml", env={})
    target = config.target("nexorouter")
    assert target.base_url == "https://api.nexorouter.com/v1"
    assert "deepseek-v4-flash" in target.models
    assert all(target.price(m, config.pricing) is not None for m in target.models)
    assert config.budget.daily_usd == Decimal("1.00")
    assert target.api_key() == SECRET


def test_the_simulator_example_loads_with_its_key_file() -> None:
    config = load(EXAMPLES / "simulator.toml", env={})
    target = config.targets[0]
    assert target.base_url == "http://127.0.0.1:8080/v1"
    assert target.api_key() == "sk-sim-local-demo"
    assert (target.models_interval, target.chat_interval, target.models) == (15.0, 30.0, ("*",))
    assert config.monitor.database_url == f"sqlite:///{EXAMPLES}/nexomon-sim.db"
    sims = ["sim-fast", "sim-balanced", "sim-large", "sim-flaky", "sim-ratelimited"]
    assert all(target.price(m, config.pricing) is not None for m in sims)
    assert config.budget.daily_usd == Decimal("0.50")


def test_a_target_price_overrides_the_top_level_table(tmp_path: Path) -> None:
    text = target_toml('[targets.pricing."a"]', "input = 9", "output = 9")
    text += '[pricing."a"]\ninput = 1\noutput = 1\n[pricing."b"]\ninput = 2\noutput = 2\n'
    config = load(write(tmp_path, text), env={})
    target = config.targets[0]
    assert target.price("a", config.pricing) == Price(input=Decimal(9), output=Decimal(9))
    assert target.price("b", config.pricing) == Price(input=Decimal(2), output=Decimal(2))
    assert target.price("c", config.pricing) is None


def test_looking_up_an_unknown_target_names_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, target_toml() + target_toml(name="u"))
    config = load(path, env={})
    assert config.target("u").name == "u"
    with pytest.raises(ConfigError) as info:
        config.target("v")
    assert str(info.value) == f"{path}: no target named 'v' (targets: t, u)"


def test_secrets_never_appear_in_repr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    url = f"postgresql+psycopg://user:{SECRET}@db/nexomon"
    config = load(write(tmp_path, f'[monitor]\ndatabase_url = "{url}"\n' + target_toml()), env={})
    assert config.targets[0].api_key() == SECRET
    assert config.monitor.database_url == url
    assert SECRET not in repr(config)
    assert SECRET not in str(config)
    assert config.monitor.database_url_redacted == "postgresql+psycopg://user:***@db/nexomon"


def test_pydantic_errors_on_direct_construction_do_not_carry_the_input() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        TargetConfig.model_validate({"name": "t", "base_url": "http://x", "api_key": SECRET})
    assert SECRET not in str(info.value)


def test_models_are_frozen_and_constructible_directly() -> None:
    target = TargetConfig(name="t", base_url="http://x/", api_key_env="K")
    assert target.base_url == "http://x"
    config = Config(targets=(target,))
    assert config.target("t") is target
    with pytest.raises(pydantic.ValidationError):
        target.max_tokens = 5  # type: ignore[misc]


def test_spool_dir_is_resolved_against_the_config_directory(tmp_path: Path) -> None:
    text = '[monitor]\nspool_dir = "spool"\nmetrics_token_env = "NEXOMON_METRICS_TOKEN"\n'
    config = load(write(tmp_path, text + target_toml()), env={})
    assert config.monitor.spool_dir == str(tmp_path / "spool")
    assert config.monitor.metrics_token_env == "NEXOMON_METRICS_TOKEN"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/v1",
        "http://[::1]:8080/v1",
        "https://api.example.com./v1",
        "https://bücher.example/v1",
        "http://gateway_1.internal:4000",
        f"https://{'a' * 63}.example.com/v1",
    ],
)
def test_valid_hosts_are_accepted(tmp_path: Path, url: str) -> None:
    text = target_toml().replace("http://127.0.0.1:8080/v1", url)
    assert load(write(tmp_path, text), env={}).targets[0].base_url == url


def test_a_timeout_equal_to_the_intervals_and_a_prompt_at_the_bound_load(tmp_path: Path) -> None:
    text = target_toml(
        'timeout = "10s"',
        'models_interval = "10s"',
        'chat_interval = "1d"',
        f'prompt = "{"x" * 4096}"',
    )
    target = load(write(tmp_path, text), env={}).targets[0]
    assert (target.timeout, target.models_interval, target.chat_interval) == (10, 10, 86400)
    assert len(target.prompt) == 4096


@pytest.mark.parametrize(
    ("lines", "timeout"),
    [
        (('chat_interval = "5s"',), 5.0),
        (('models_interval = "2s"', 'chat_interval = "10s"'), 2.0),
        (('models_interval = "45s"',), 30.0),
    ],
)
def test_an_unset_timeout_is_30s_or_the_shorter_interval(
    tmp_path: Path, lines: tuple[str, ...], timeout: float
) -> None:
    assert load(write(tmp_path, target_toml(*lines)), env={}).targets[0].timeout == timeout


@pytest.mark.parametrize(("mode", "warns"), [(0o600, False), (0o640, True), (0o604, True)])
def test_a_key_file_readable_by_others_is_warned_about_once_per_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: int, warns: bool
) -> None:
    path = write(tmp_path, target_toml(key='api_key_file = "gw.key"'))
    key_file = tmp_path / "gw.key"
    key_file.write_text(SECRET, encoding="utf-8")
    key_file.chmod(mode)
    target = load(path, env={}).targets[0]
    with caplog.at_level("WARNING", logger="nexomon.config"):
        assert target.api_key() == SECRET
    warnings = [r.getMessage() for r in caplog.records if r.name == "nexomon.config"]
    expected = (
        f"{path}: targets[0].api_key_file: {key_file} is readable by group or others"
        f" (mode {mode:04o}); run chmod 600 on it"
    )
    assert warnings == ([expected] if warns else [])
    assert all(SECRET not in w for w in warnings)
