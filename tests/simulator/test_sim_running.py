"""Running the simulator: in-process ASGI, RunningSimulator, and `serve` as a process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sim_helpers import chat_body

from monitor.simulator.scenario import Scenario
from monitor.simulator.server import RunningSimulator, build_app

ONE_MODEL = Scenario.from_dict({"models": {"m": {}}})


async def test_app_answers_in_process_over_asgi_transport() -> None:
    app = build_app(ONE_MODEL)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sim/v1", headers={"Authorization": "Bearer k"}
    ) as client:
        models = await client.get("/models")
        chat = await client.post("/chat/completions", json=chat_body("m"))
    assert [m["id"] for m in models.json()["data"]] == ["m"]
    assert chat.json()["usage"]["total_tokens"] > 0
    assert app.stats.snapshot()["requests"] == {"models": 1, "chat": {"m": 1}}


def test_running_simulator_stops_and_frees_its_port() -> None:
    with RunningSimulator(ONE_MODEL) as sim:
        port = sim.port
        assert sim.base_url == f"http://127.0.0.1:{port}/v1"
        assert httpx.get(f"{sim.base_url}/models", headers={"Authorization": "Bearer k"}).is_success
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_running_simulator_stops_while_a_request_hangs() -> None:
    scenario = Scenario.from_dict({"models": {"h": {"faults": [{"kind": "hang", "rate": 1.0}]}}})
    sim = RunningSimulator(scenario).start()
    client = httpx.Client(base_url=sim.base_url, headers={"Authorization": "Bearer k"})
    try:
        with contextlib.suppress(httpx.ReadTimeout):
            client.post("/chat/completions", json=chat_body("h"), timeout=0.2)
    finally:
        sim.stop()
        client.close()
    assert sim._thread is None


def test_default_scenario_is_used_when_none_is_given() -> None:
    with RunningSimulator() as sim:
        assert sim.simulator.scenario.name == "default"


def test_running_simulator_loads_a_scenario_file() -> None:
    demo = Path(__file__).parents[2] / "monitor" / "simulator" / "demo.toml"
    with RunningSimulator(scenario_path=demo) as sim:
        assert sim.simulator.scenario.name == "demo"
        assert sim.simulator.scenario.model("sim-retiring") is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_prints_its_url_and_exits_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    scenario = tmp_path / "mine.toml"
    scenario.write_text("[models.only-one]\n")
    port = free_port()
    code = (
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from monitor.simulator.server import serve\n"
        f"serve('127.0.0.1', {port}, {str(scenario)!r})\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line == f"nexomon simulator on http://127.0.0.1:{port}/v1 (scenario: mine)"
        for _ in range(100):  # the line is printed just before uvicorn starts serving
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": "Bearer k"}
                )
                break
            except httpx.ConnectError:
                time.sleep(0.05)
        assert response.json()["data"][0]["id"] == "only-one"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "Traceback" not in err


def test_serve_reports_a_bad_scenario_as_scenario_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[models.m]\nerror_rate = 3\n")
    code = f"from monitor.simulator.server import serve; serve('127.0.0.1', 0, {str(bad)!r})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    assert proc.returncode != 0
    assert f"{bad}: models.m.error_rate: must be between 0 and 1 (got 3)" in proc.stderr
