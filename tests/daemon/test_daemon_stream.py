"""The stream probe in the daemon (issue 18, point 5): opt-in jobs, rows, stream series.

``nexomon run`` with ``stream_interval`` against a simulator whose model
streams: the stream job runs beside the chat job, its rows keep outcome,
duration and usage, and ``/metrics`` carries the stream histograms and the
token-rate gauge; the stream job feeds no duration histogram.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from daemon_kit import eventually
from harness import running_daemon, write_config
from prometheus_client.parser import text_string_to_metric_families

from monitor.simulator.scenario import Scenario
from monitor.simulator.server import RunningSimulator

REPLY = " ".join(f"w{i}" for i in range(30))
SCENARIO = {
    "name": "stream",
    "reply": REPLY,
    "models": {"sim-s": {"stream": {"ttft_ms": 50, "tokens_per_s": 400}}},
}
TTFC = "nexomon_stream_time_to_first_chunk_seconds"


def _samples(text: str) -> dict[str, float]:
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get("model") == "sim-s"
        and s.labels.get("le") in (None, "+Inf")
        and s.labels.get("probe") in (None, "stream")
    }


def test_a_streaming_target_exports_its_stream_series_and_rows(tmp_path: Path) -> None:
    with RunningSimulator(Scenario.from_dict(SCENARIO)) as sim:
        config = write_config(
            tmp_path,
            sim.base_url,
            target={
                "models": ["sim-s"],
                "models_interval": "1h",
                "chat_interval": "1h",
                "stream_interval": "2s",
                "max_tokens": 20,
            },
        )
        with running_daemon(config) as daemon:

            def streamed() -> dict[str, float]:
                samples = _samples(daemon.get("/metrics").text)
                assert samples.get(f"{TTFC}_count", 0) >= 1, daemon.log()[-2000:]
                return samples

            samples = eventually(streamed, timeout=60.0)
            assert samples["nexomon_stream_time_per_output_chunk_seconds_count"] >= 19
            assert samples["nexomon_stream_output_tokens_per_second"] > 0
            assert samples[f"{TTFC}_sum"] >= 0.05  # the simulator's 50 ms at least
            assert "nexomon_probe_duration_seconds_count" not in samples  # not for streams
            assert samples["nexomon_probe_interval_seconds"] == 2.0
            time.sleep(0.5)  # the writer's next flush
            db = tmp_path / "nexomon.db"

            def rows() -> list[tuple]:
                conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
                try:
                    found = conn.execute(
                        "SELECT outcome, completion_tokens, duration_s FROM probe_results"
                        " WHERE probe = 'stream'"
                    ).fetchall()
                finally:
                    conn.close()
                assert found
                return found

            outcome, tokens, duration = eventually(rows)[0]
            assert (outcome, tokens) == ("ok", 20) and duration > 0.05
