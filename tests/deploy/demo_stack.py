"""The demo stack of the panel end-to-end tests: simulator, daemon, Prometheus with rules.

Contract: :func:`demo_stack` starts, in this order, the simulator (scenario
:data:`SCENARIO`) in this process, a real Prometheus scraping the daemon's
address every second with deploy/rules loaded, and ``nexomon run`` as a
subprocess; waits (polling Prometheus, :data:`DEADLINE_S` per condition) until
the failures, the 429s, the unpriced model, the refused gateway and the
revoked key's 403s are visible; retires ``sim-retiring`` by moving the
simulator's clock; waits for that catalog change; then yields a
:class:`Stack`. Every process is stopped on exit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from harness import PrometheusProcess, listen_url, running_daemon, write_config
from testutil import free_port

from monitor.simulator.scenario import Scenario
from monitor.simulator.server import RunningSimulator

from .tools import DEPLOY

RULE_FILES = sorted(p for p in (DEPLOY / "rules").glob("*.yml") if not p.name.endswith(".test.yml"))
DEADLINE_S = 90.0  # per wait; generous for a loaded 2-core machine
SCRAPE_S = 1.0
ALL = ".*"  # the dashboards' allValue for target and model

REVOKED_KEY = "sk-revoked-e2e"  # the simulator answers it 403: target badkey
SCENARIO: dict[str, Any] = {
    "name": "panels-e2e",
    "seed": 5,
    "revoked_keys": [REVOKED_KEY],
    "models": {
        "sim-ok": {"latency_ms": 20},
        "sim-unpriced": {"latency_ms": 20},
        "sim-down": {"latency_ms": 10, "error_rate": 1.0},
        # OpenAI-style headers, as demo.toml's: both kinds and resets ("Reset in").
        "sim-ratelimited": {
            "latency_ms": 10,
            "ratelimit": {"limit": 5, "per_s": 0.001},
            "ratelimit_headers": "openai",
        },
        "sim-retiring": {"latency_ms": 10, "disappear_after_s": 3600},
    },
}
PRICED = ("sim-ok", "sim-down", "sim-ratelimited", "sim-retiring")


@dataclass
class Stack:
    """What the tests read: Prometheus, the daemon's /metrics once ready, the start time."""

    prometheus: PrometheusProcess
    metrics_text: str
    started: float  # when Prometheus started scraping (epoch seconds)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.prometheus.url, timeout=15)


class RulesPrometheus(PrometheusProcess):
    """PrometheusProcess whose config (rules included) is written with yaml.safe_dump.

    When this was written, harness.PrometheusProcess put the rule file list into
    an indented text template before dedenting it: a config with neither the
    rules nor the scrape job. This rewrites that file before Prometheus starts.
    """

    def __init__(self, directory: Path, targets: list[str], *, rule_files: list[Path]) -> None:
        super().__init__(directory, targets, interval=f"{SCRAPE_S:g}s")
        interval = f"{SCRAPE_S:g}s"
        config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": [{"job_name": "nexomon", "static_configs": [{"targets": targets}]}],
        }
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")


def _wait(what: str, check: Callable[[], bool], log: Callable[[], str]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n--- daemon log ---\n{log()[-4000:]}")


def _extra_config(dead_url: str, sim_url: str) -> str:
    prices = "".join(f'\n[pricing."{model}"]\ninput = 0.10\noutput = 0.40\n' for model in PRICED)
    return (
        "\n[[targets]]\n"
        'name = "dead"\n'
        f'base_url = "{dead_url}"\n'
        'api_key_file = "api.key"\n'
        'timeout = "1s"\n'
        'models_interval = "1s"\n'
        'chat_interval = "1s"\n'
        # The simulator with a revoked key; a model name of its own, so its
        # series never share a panel row with target sim's.
        "\n[[targets]]\n"
        'name = "badkey"\n'
        f'base_url = "{sim_url}"\n'
        'api_key_file = "revoked.key"\n'
        'timeout = "1s"\n'
        'models_interval = "1s"\n'
        'chat_interval = "1s"\n'
        'models = ["sim-badkey"]\n'
        f"{prices}\n[budget]\ndaily_usd = 5.0\n"
    )


@contextmanager
def demo_stack(directory: Path) -> Iterator[Stack]:
    """The running stack (see the module contract)."""
    shift = [0.0]  # seconds added to the simulator's clock: moving it retires sim-retiring
    scenario = Scenario.from_dict(SCENARIO)
    with RunningSimulator(scenario, clock=lambda: time.monotonic() + shift[0]) as sim:
        config = write_config(
            directory,
            sim.base_url,
            # sim-retiring is named explicitly: a model discovered through "*" loses
            # every series (model_listed included) when it leaves /models, so only a
            # configured model can raise NexomonModelDelisted.
            target={
                "models": ["*", "sim-retiring"],
                "models_interval": "1s",
                "chat_interval": "1s",
                "contract_interval": "1s",  # the Contract checks panel
                # At most the 1 s interval (a probe must end before its next run);
                # a stall of the test machine is brief against the alerts' 5m windows.
                "timeout": "1s",
            },
            extra=_extra_config(f"http://127.0.0.1:{free_port()}/v1", sim.base_url),
        )
        key_file = directory / "revoked.key"
        key_file.write_text(REVOKED_KEY + "\n")
        key_file.chmod(0o600)
        # Prometheus first, as in the compose stack: it sees every counter from 0.
        target = listen_url(config).removeprefix("http://")
        started = time.time()
        with (
            RulesPrometheus(
                directory / "prometheus", [target], rule_files=RULE_FILES
            ) as prometheus,
            running_daemon(config) as daemon,
        ):

            def seen(expr: str) -> Callable[[], bool]:
                return lambda: bool(prometheus.query(expr))

            # The daemon has listed the retiring model, seen the failures and the 429s...
            for expr in (
                'nexomon_model_listed{target="sim", model="sim-retiring"} == 1',
                'nexomon_probes_total{model="sim-ratelimited", outcome="rate_limited"} > 0',
                'nexomon_probes_total{model="sim-down", outcome="server_error"} > 0',
                'nexomon_model_unpriced{model="sim-unpriced"} == 1',
                'nexomon_probes_total{target="dead", outcome="connection_error"} > 0',
                'nexomon_probes_total{target="badkey", probe="chat", outcome="auth_error"} > 0',
            ):
                _wait(expr, seen(expr), daemon.log)
            # ...then the model retires: the next /models answer lacks it.
            shift[0] = 7200.0
            # "offset 2s": the removal must be older than the rounding of a range
            # query's end to the second, or the panel query can miss it.
            expr = 'nexomon_catalog_changes_total{target="sim", change="removed"} offset 2s > 0'
            _wait(expr, seen(expr), daemon.log)
            metrics_text = daemon.get("/metrics").text
            yield Stack(prometheus, metrics_text, started)
            daemon.stop()
