"""The other ``nexomon`` commands as real subprocesses, and the README quick start.

``config check``, ``db upgrade`` (SQLite in a temp dir), ``probe --record``
followed by ``report`` in every format, ``simulate`` serving on a port and
stopping on SIGINT, ``--version``, and the README's two-terminal flow:
``nexomon simulate`` then ``nexomon probe -c examples/simulator.toml`` (on a
free port instead of 8080, in a copy of the example config).
"""

from __future__ import annotations

import csv
import io
import shutil
import sqlite3
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cli_helpers import (
    REPO,
    SimulateProcess,
    assert_absent,
    header_titles,
    lines,
    nexomon,
    parse_table,
    target,
    unique_secret,
    write_config,
)
from testutil import free_port

from monitor import __version__
from monitor.simulator.scenario import Scenario
from monitor.simulator.server import DEFAULT_PORT, RunningSimulator
from monitor.simulator.tokens import complete, prompt_tokens

KEY = unique_secret()
ENV = {"NX_KEY": KEY}
PRICED = """
[pricing."m-a"]
input = 2.0
output = 4.0

[budget]
daily_usd = 1.0
"""


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    scenario = {"name": "commands", "api_keys": [KEY], "models": {"m-a": {}, "m-b": {}}}
    with RunningSimulator(Scenario.from_dict(scenario)) as running:
        yield running


def sim_config(directory: Path, sim: RunningSimulator, **keys: object) -> Path:
    defaults = {"api_key_env": "NX_KEY", "models": ["m-a", "m-b"]}
    return write_config(
        directory, [target("sim", sim.base_url, **{**defaults, **keys})], extra=PRICED
    )


def test_version_prints_the_package_version() -> None:
    ran = nexomon("--version")
    assert ran.rc == 0, ran
    assert ran.out.strip() == f"nexomon {__version__}"


def test_config_check_validates_and_prints_the_forecast(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    sim.simulator.reset()
    config = sim_config(tmp_path, sim)
    ran = nexomon("config", "check", "-c", str(config), env=ENV)

    assert ran.rc == 0, ran
    out = lines(ran.out)
    assert out[0] == f"{config}: ok (1 target(s): sim)"
    assert any(line.startswith("expected probe spend:") for line in out), ran
    assert any(line.split()[:2] == ["sim", "m-a"] for line in out), ran  # a forecast row
    assert_absent(KEY, ran.out, ran.err)
    assert sim.simulator.stats.log() == []  # config check sends no request


def test_config_check_rejects_a_bad_config_with_one_line(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    config = sim_config(tmp_path, sim, chat_interval="0s")
    ran = nexomon("config", "check", "-c", str(config), env=ENV)

    assert ran.rc == 2, ran
    assert ran.out == ""
    assert lines(ran.err) == [f"nexomon: {config}: targets[0].chat_interval: must be at least 1s"]


def test_config_check_reports_a_missing_key_variable(sim: RunningSimulator, tmp_path: Path) -> None:
    config = sim_config(tmp_path, sim)
    ran = nexomon("config", "check", "-c", str(config))  # NX_KEY not set

    assert ran.rc == 2, ran
    assert lines(ran.err) == [
        f"nexomon: {config}: targets[0].api_key_env: environment variable NX_KEY is not set"
    ]


def test_db_upgrade_creates_the_schema_and_is_idempotent(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    config = sim_config(tmp_path, sim)
    db_file = tmp_path / "nexomon.db"
    for _ in range(2):
        ran = nexomon("db", "upgrade", "-c", str(config), env=ENV)
        assert ran.rc == 0, ran
        assert ran.out.strip() == f"database at head: sqlite:///{db_file}"
    with sqlite3.connect(db_file) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        version = db.execute("SELECT version_num FROM alembic_version").fetchall()
    assert {"probe_results", "catalog_models", "catalog_events"} <= tables
    assert len(version) == 1


def test_probe_record_stores_the_round_and_report_shows_it(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    sim.simulator.reset()
    config = sim_config(tmp_path, sim)
    probed = nexomon("probe", "-c", str(config), "--record", "--json", env=ENV)
    assert probed.rc == 0, probed
    results = {(r["probe"], r["model"]): r for r in probed.json()}
    assert set(results) == {("models", ""), ("chat", "m-a"), ("chat", "m-b")}

    with sqlite3.connect(tmp_path / "nexomon.db") as db:
        stored = db.execute(
            "SELECT probe, model, outcome, request_id, prompt_tokens, completion_tokens"
            " FROM probe_results"
        ).fetchall()
    assert sorted(stored) == sorted(
        (p, m, r["outcome"], r["request_id"], r["prompt_tokens"], r["completion_tokens"])
        for (p, m), r in results.items()
    )
    assert KEY.encode() not in (tmp_path / "nexomon.db").read_bytes()

    as_json = nexomon("report", "-c", str(config), "--format", "json", env=ENV)
    assert as_json.rc == 0, as_json
    rows = {(r["probe"], r["model"]): r for r in as_json.json()}
    assert set(rows) == set(results)
    for key, row in rows.items():
        assert row["target"] == "sim"
        assert row["probes"] == 1
        assert row["outcomes"]["ok"] == 1
        assert row["availability_pct"] == 100.0
        assert row["prompt_tokens"] == (results[key]["prompt_tokens"] or 0)
        assert row["completion_tokens"] == (results[key]["completion_tokens"] or 0)
    assert rows[("chat", "m-a")]["cost_known"] is True  # priced in PRICED
    assert rows[("chat", "m-b")]["unpriced_rows"] == 1  # spent tokens, no price

    as_csv = nexomon("report", "-c", str(config), "--format", "csv", env=ENV)
    assert as_csv.rc == 0, as_csv
    parsed = list(csv.DictReader(io.StringIO(as_csv.out)))
    assert {(r["probe"], r["model"]) for r in parsed} == set(results)
    assert all(r["probes"] == "1" and r["ok"] == "1" for r in parsed)

    as_table = nexomon("report", "-c", str(config), env=ENV)  # --format table is the default
    assert as_table.rc == 0, as_table
    assert header_titles(as_table.out)[:3] == ["target", "probe", "model"]
    assert len([line for line in lines(as_table.out) if line.startswith("sim ")]) == 3


@pytest.mark.parametrize("since", ["yesterday", "2025-13-45"])
def test_report_rejects_a_bad_since_with_one_line(
    sim: RunningSimulator, tmp_path: Path, since: str
) -> None:
    config = sim_config(tmp_path, sim)
    ran = nexomon("report", "-c", str(config), "--since", since, env=ENV)
    assert ran.rc == 2, ran
    assert ran.out == ""
    assert len(lines(ran.err)) == 1 and "--since" in ran.err, ran
    assert "Traceback" not in ran.err


def test_simulate_serves_the_models_and_stops_cleanly_on_sigint() -> None:
    port = free_port()
    with SimulateProcess(port) as simulate:
        answer = httpx.get(
            f"{simulate.base_url}/models", headers={"Authorization": "Bearer sk-anything"}
        )
        unauthorised = httpx.get(f"{simulate.base_url}/models")
        rc, out, err = simulate.stop()

    assert answer.status_code == 200
    ids = [m["id"] for m in answer.json()["data"]]
    assert ids == [m.id for m in Scenario.packaged("default").models]
    assert unauthorised.status_code == 401
    assert rc == 0, err
    assert f"nexomon simulator on http://127.0.0.1:{port}/v1 (scenario: default)" in out
    assert "Traceback" not in err
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{simulate.base_url}/models", timeout=2)


def test_simulate_refuses_a_bad_scenario_and_a_bad_port(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.toml"
    scenario.write_text("[models.m]\nerror_rate = 2\n")
    bad_scenario = nexomon("simulate", "--port", str(free_port()), "--scenario", str(scenario))
    bad_port = nexomon("simulate", "--port", "70000")

    assert bad_scenario.rc == 2, bad_scenario
    assert lines(bad_scenario.err) == [
        f"nexomon: {scenario}: models.m.error_rate: must be between 0 and 1 (got 2)"
    ]
    assert bad_port.rc == 2, bad_port
    assert lines(bad_port.err) == ["nexomon: --port 70000: must be 0..65535"]


def test_example_config_points_at_the_simulators_default_port() -> None:
    # The README's two commands only meet if these agree.
    example = tomllib.loads((REPO / "examples" / "simulator.toml").read_text())
    (sim_target,) = example["targets"]
    assert sim_target["base_url"] == f"http://127.0.0.1:{DEFAULT_PORT}/v1"
    assert DEFAULT_PORT == 8080
    key = (REPO / "examples" / sim_target["api_key_file"]).read_text().strip()
    accepted = Scenario.packaged("default").api_keys
    assert not accepted or key in accepted


def test_readme_quick_start_simulate_then_probe(tmp_path: Path) -> None:
    port = free_port()
    examples = REPO / "examples"
    config = tmp_path / "simulator.toml"
    text = (examples / "simulator.toml").read_text()
    config.write_text(text.replace(f"127.0.0.1:{DEFAULT_PORT}/v1", f"127.0.0.1:{port}/v1"))
    shutil.copy(examples / "simulator.key", tmp_path / "simulator.key")
    default = Scenario.packaged("default")

    with SimulateProcess(port):
        table = nexomon("probe", "-c", str(config))
        as_json = nexomon("probe", "-c", str(config), "--json")
        log = httpx.get(f"http://127.0.0.1:{port}/_sim/stats").json()["log"]

    issued = {entry["request_id"] for entry in log}
    for ran in (table, as_json):
        assert ran.rc in (0, 1), ran
        assert "Traceback" not in ran.err
    rows = parse_table(table.out)
    assert [(r["PROBE"], r["MODEL"]) for r in rows] == [("models", "-")] + [
        ("chat", m.id) for m in default.models
    ]
    assert table.rc == (0 if all(r["OUTCOME"] == "ok" for r in rows) else 1)
    expected_in = prompt_tokens([{"role": "user", "content": "Reply with OK. [nx-0a1b2c]"}])
    expected_out = complete(default.reply, 16)[1]
    for row in rows:
        if row["REQUEST_ID"] != "-":
            assert row["REQUEST_ID"] in issued
        # The flaky model fails now and then, by design; the others must answer.
        if row["MODEL"] != "sim-flaky":
            assert (row["OUTCOME"], row["HTTP"]) == ("ok", "200"), table
        if row["PROBE"] == "chat" and row["OUTCOME"] == "ok":
            assert (row["TOKENS_IN"], row["TOKENS_OUT"]) == (str(expected_in), str(expected_out))
    results = as_json.json()
    assert [(r["probe"], r["model"]) for r in results] == [("models", "")] + [
        ("chat", m.id) for m in default.models
    ]
    assert {r["request_id"] for r in results if r["request_id"]} <= issued
    assert as_json.rc == (0 if all(r["success"] for r in results) else 1)


IMPORT_EACH_FIRST = """
import importlib, pkgutil, sys
import monitor
names = sorted(m.name for m in pkgutil.walk_packages(monitor.__path__, "monitor."))
for name in names:
    for loaded in [m for m in sys.modules if m == "monitor" or m.startswith("monitor.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as exc:
        print(f"{name}: {type(exc).__name__}: {exc}")
print(f"checked {len(names)}")
"""


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    # `python -c "import monitor.probes"` once died on a circular import that
    # the usual import order (cli -> commands -> daemon) hid.
    ran = subprocess.run(
        [sys.executable, "-c", IMPORT_EACH_FIRST], capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr
    *failures, summary = lines(ran.stdout)
    assert failures == []
    assert summary.startswith("checked ") and int(summary.split()[1]) > 20
