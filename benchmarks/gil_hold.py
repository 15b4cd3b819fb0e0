"""GIL holds: how long a worker thread's JSON encoding stalls the event loop.

    python benchmarks/gil_hold.py [--rows 10000] [--repeat 5] [--json]

The daemon builds ``/api/v1/status`` and its 24 h window in worker threads
while the event loop runs the probes. With the daemon's GIL switch interval
(monitor.daemon.runtime, 0.1 ms) a busy Python thread hands the GIL back
within that interval, but one C call holds it to the end: the C JSON encoder
over a whole 10,000-row window (~10 MB) is one such call. This measures, for
``--rows`` status rows (each with a full last result, as the window has):

- ``encode_ms``: one encoding (mean of ``--repeat``, in the worker thread);
- ``loop_stall_max_ms`` / ``loop_stall_p99_ms``: how late an asyncio
  ``sleep(0.001)`` on the main thread woke while the worker encoded, the
  scheduler lag a probe would have seen.

Ways: ``one call`` (``encode(list)``: the window before this benchmark),
``value by value`` (``jsonbody.json_array``, what the window does now) and
``results cache cold`` (``ResultsJson.encode`` of as many last results, the
other half of the status body).
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from bench_common import emit, parser, percentile

from monitor.daemon.jsonbody import ResultsJson, encode, json_array
from monitor.daemon.runtime import SWITCH_INTERVAL_S
from monitor.outcome import Outcome
from monitor.results import Phases, ProbeResult


def last_results(count: int) -> dict[tuple[str, str, str], ProbeResult]:
    now = datetime.now(UTC)
    out = {}
    for i in range(count):
        target, model = f"gw-{i // 100}", f"vendor/model-{i}"
        out[(target, "chat", model)] = ProbeResult(
            started_at=now, location="local", target=target, probe="chat", model=model,
            outcome=Outcome.OK, http_status=200, duration_s=0.0123,
            phases=Phases(resolve=0.0001, connect=0.0002, processing=0.011, transfer=0.001),
            request_id=f"req-{i:016x}", prompt_tokens=16, completion_tokens=12, total_tokens=28,
            cost_usd=Decimal("0.0000123"), ratelimit_limit=1000, ratelimit_remaining=999,
            ratelimit_reset_s=1.0, finish_reason="stop", response_model=model,
        )  # fmt: skip
    return out


async def _stalls(work: Callable[[], object], repeat: int) -> tuple[list[float], float]:
    """Runs ``work`` ``repeat`` times in a thread; the loop's wake-up delays meanwhile."""
    done = threading.Event()
    spent: list[float] = []

    def worker() -> None:
        for _ in range(repeat):
            start = time.perf_counter()
            work()
            spent.append(time.perf_counter() - start)
        done.set()

    thread = threading.Thread(target=worker)
    thread.start()
    late: list[float] = []
    while not done.is_set():
        start = time.perf_counter()
        await asyncio.sleep(0.001)
        late.append(max(0.0, time.perf_counter() - start - 0.001))
    thread.join()
    return late, sum(spent) / len(spent)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    results = last_results(args.rows)
    window = [
        {"target": t, "probe": p, "model": m, "last": r.to_json(), "probes": 1440,
         "availability_pct": 99.93, "p95_s": 0.0131}
        for (t, p, m), r in results.items()
    ]  # fmt: skip
    ways: list[tuple[str, Callable[[], object]]] = [
        ("one call", lambda: encode(window)),
        ("value by value", lambda: json_array(window)),
        ("results cache cold", lambda: ResultsJson().encode(results)),
    ]
    previous = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    rows = []
    try:
        for name, work in ways:
            late, each = asyncio.run(_stalls(work, args.repeat))
            rows.append(
                {
                    "way": name,
                    "rows": args.rows,
                    "encode_ms": round(each * 1e3, 1),
                    "loop_stall_max_ms": round(max(late) * 1e3, 1),
                    "loop_stall_p99_ms": round(percentile(late, 99) * 1e3, 1),
                }
            )
    finally:
        sys.setswitchinterval(previous)
    emit(args, "GIL holds of JSON encoding in a worker thread", rows,
         switch_interval_ms=SWITCH_INTERVAL_S * 1e3)  # fmt: skip


if __name__ == "__main__":
    main()
