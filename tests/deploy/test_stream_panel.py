"""The Overview's streaming panel on stream series.

Streaming is opt-in (``stream_interval``) and the demo stack does not
stream, so the panel legitimately shows its ``noValue`` there
(test_deploy_panels_e2e.NO_DATA_IN_DEMO). Here promtool evaluates the
panel's own queries, with Grafana's variables substituted, over the bucket
series two nexomon locations export with the exporter's own bucket bounds:
time to first chunk p50/p95 and chunk-gap p95 per location, target and
model, narrowed by the variables as every panel is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.exporter.metrics import STREAM_CHUNK_BUCKETS, STREAM_TTFC_BUCKETS

from .panel_queries import panel_queries
from .tools import DASHBOARDS, load_dashboard, need_binary, run

TITLE = "Streams: time to first chunk and per output chunk"
TTFC = "nexomon_stream_time_to_first_chunk_seconds_bucket"
GAPS = "nexomon_stream_time_per_output_chunk_seconds_bucket"
# Where each location's observations fall: every one in the bucket ending at
# ``upper`` (so histogram_quantile interpolates inside it, from the bound below).
TTFC_UPPER = {"eu": 0.5, "us": 1.0}
GAP_UPPER = {"eu": 0.02, "us": 0.05}


def _panel(dashboard: dict[str, Any]) -> dict[str, Any]:
    (panel,) = [p for p in dashboard["panels"] if p.get("title") == TITLE]
    return panel


def _series(metric: str, bounds: tuple[float, ...], upper: dict[str, float]) -> list[dict]:
    """Counters growing 60 a minute in every bucket at or above ``upper``, 0 below."""
    out = []
    for location, top in upper.items():
        for le in [*(f"{b:g}" for b in bounds), "+Inf"]:
            filled = le == "+Inf" or float(le) >= top
            out.append(
                {
                    "series": f'{metric}{{location="{location}",job="nexomon",'
                    f'instance="{location}:9464",target="gw",model="m",le="{le}"}}',
                    "values": "0+60x20" if filled else "0x20",
                }
            )
    return out


def _quantile(bounds: tuple[float, ...], top: float, q: float) -> float:
    below = max((b for b in bounds if b < top), default=0.0)
    return below + (top - below) * q


def test_the_panel_says_streaming_is_off_when_no_target_streams() -> None:
    panel = _panel(load_dashboard(DASHBOARDS / "overview.json"))
    assert "stream_interval" in panel["fieldConfig"]["defaults"]["noValue"]
    assert panel["fieldConfig"]["defaults"]["unit"] == "s"


@pytest.mark.parametrize("locations", [{"eu", "us"}, {"us"}], ids=["all", "one-location"])
def test_the_panel_queries_show_ttft_and_chunk_gaps_per_location(
    tmp_path: Path, locations: set[str]
) -> None:
    promtool = need_binary("promtool")
    chosen: Any = ".*" if len(locations) == 2 else sorted(locations)
    variables = {"location": chosen, "target": ".*", "model": ".*"}
    queries = dict(panel_queries(load_dashboard(DASHBOARDS / "overview.json"), variables))
    expected = {
        f"{TITLE} (A)": (STREAM_TTFC_BUCKETS, TTFC_UPPER, 0.5),
        f"{TITLE} (B)": (STREAM_TTFC_BUCKETS, TTFC_UPPER, 0.95),
        f"{TITLE} (C)": (STREAM_CHUNK_BUCKETS, GAP_UPPER, 0.95),
    }
    tests = [
        {
            "expr": queries[title],
            "eval_time": "10m",
            "exp_samples": [
                {
                    "labels": f'{{location="{loc}", model="m", target="gw"}}',
                    "value": _quantile(bounds, upper[loc], q),
                }
                for loc in sorted(locations)
            ],
        }
        for title, (bounds, upper, q) in expected.items()
    ]
    series = _series(TTFC, STREAM_TTFC_BUCKETS, TTFC_UPPER)
    series += _series(GAPS, STREAM_CHUNK_BUCKETS, GAP_UPPER)
    test_file = tmp_path / "panel.test.yml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "evaluation_interval": "1m",
                "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}],
            }
        )
    )
    result = run([promtool, "test", "rules", str(test_file)])
    assert result.returncode == 0, result.stdout + result.stderr
