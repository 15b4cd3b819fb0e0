"""Where the daemon's memory goes and what grows: tracemalloc over the real Daemon.

    python benchmarks/memory_trace.py [--models 1000] [--interval 12] [--minutes 5]
        [--top 15] [--frames 1] [--tracebacks] [--no-trace] [--json]

Runs the real ``Daemon`` (scheduler, runner, SQLite writer, exporter, HTTP
routes) in this process against the nginx static responder, chat and models
every ``--interval`` seconds (shorter than memory.py's 60 s, to make a
per-result growth show sooner), /metrics scraped every 15 s from a thread
like Prometheus would. A tracemalloc snapshot is taken once the heap has been
settled (``monitor.daemon.runtime``: every job ran once, heap frozen) plus one
interval, and again at the end; it prints:

- RSS, Python-traced memory and the frozen / tracked object counts over time;
- the top allocation sites by growth between the two snapshots (by line,
  and the top few with their tracebacks);
- what the exporter's render cache and the writer's buffer hold;
- at the end: how much of the growth is cyclic garbage the frozen heap kept
  (``gc.unfreeze(); gc.collect()``) and how much RSS is free heap glibc
  keeps (``malloc_trim(0)``), i.e. fragmentation rather than live objects.

``--no-trace`` measures RSS without tracemalloc's own overhead (it doubles
the heap and, at 1,000 models every 12 s, keeps a core busy; ``--frames``
above 1 and ``--tracebacks`` cost more still). Environment experiments (``MALLOC_ARENA_MAX=2``,
``PYTHONMALLOC=malloc``) are set on the command line. Run it under the
bench lock: ``flock /tmp/bench.lock python benchmarks/memory_trace.py``.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import gc
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import tracemalloc
import urllib.request
from pathlib import Path
from typing import Any

from bench_common import Responder, emit, free_port, parser, rss_mb, write_config

SAMPLE_S = 15.0
SCRAPE_S = 15.0


def malloc_trim() -> bool:
    """glibc's malloc_trim(0): hands free heap pages back to the OS."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        return bool(ctypes.CDLL(name).malloc_trim(0))
    except AttributeError:  # not glibc
        return False


@functools.cache
def _libsqlite() -> Any | None:
    """The SQLite library Python's sqlite3 module is linked to (for its own heap counter)."""
    import _sqlite3

    name = ctypes.util.find_library("sqlite3")
    try:
        lib = ctypes.CDLL(name) if name else ctypes.CDLL(_sqlite3.__file__)
        lib.sqlite3_memory_used.restype = ctypes.c_int64
        return lib
    except (OSError, AttributeError):
        return None


def sqlite_mb() -> float:
    """MB SQLite has allocated (page caches, statements): not seen by tracemalloc."""
    lib = _libsqlite()
    return lib.sqlite3_memory_used() / 2**20 if lib is not None else float("nan")


def exposition_bytes(exporter: Any) -> dict[str, float]:
    """MB the exporter's render cache holds, per attribute (read only, generic:
    monitor/exporter/exposition.py's internals change; prometheus objects are not counted)."""
    expo = getattr(exporter, "_exposition", None)
    if expo is None:
        return {}
    seen: set[int] = set()
    out = {
        name: _deep_size(value, seen) / 2**20
        for name, value in vars(expo).items()
        if isinstance(value, dict | list | tuple | set | str | bytes)
    }
    return {k: v for k, v in out.items() if v >= 0.01}


def _deep_size(obj: Any, seen: set[int]) -> int:
    """Bytes of builtin containers and text under ``obj``, each object once."""
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, str | bytes | int | float):
        return sys.getsizeof(obj)
    if isinstance(obj, dict):
        return sys.getsizeof(obj) + sum(
            _deep_size(k, seen) + _deep_size(v, seen) for k, v in obj.items()
        )
    if isinstance(obj, list | tuple | set | frozenset):
        return sys.getsizeof(obj) + sum(_deep_size(v, seen) for v in obj)
    return 0  # metric objects, locks: owned elsewhere


def scraper(port: int, stop: threading.Event, sizes: list[int]) -> None:
    url = f"http://127.0.0.1:{port}/metrics"
    while not stop.wait(SCRAPE_S):
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                sizes.append(len(resp.read()))
        except OSError:
            pass


def snapshot(frames: int) -> tracemalloc.Snapshot:
    snap = tracemalloc.take_snapshot()
    return snap.filter_traces(
        [
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
        ]
    )


def print_growth(
    old: tracemalloc.Snapshot, new: tracemalloc.Snapshot, top: int, tracebacks: bool
) -> None:
    stats = new.compare_to(old, "lineno")
    total = sum(s.size_diff for s in stats)
    print(f"\ntracemalloc growth between snapshots: {total / 2**20:+.2f} MB; top {top} by line:")
    print(f"{'size_diff_KB':>12} {'count_diff':>10} {'size_KB':>10}  site")
    for s in stats[:top]:
        frame = s.traceback[0]
        where = f"{_short(frame.filename)}:{frame.lineno}"
        print(f"{s.size_diff / 1024:12.1f} {s.count_diff:10d} {s.size / 1024:10.1f}  {where}")
    if not tracebacks:
        return
    print("\ntop 5 growing tracebacks:")
    for s in new.compare_to(old, "traceback")[:5]:
        print(f"  {s.size_diff / 1024:+.1f} KB, {s.count_diff:+d} blocks")
        for frame in s.traceback.format(most_recent_first=True)[:16]:
            print("    " + frame.strip().replace(str(Path(sys.prefix)), "<venv>"))


def print_largest(snap: tracemalloc.Snapshot, top: int) -> None:
    stats = snap.statistics("filename")
    print(f"\nlargest holders at the end by file (top {top}):")
    for s in stats[:top]:
        print(f"{s.size / 2**20:10.2f} MB {s.count:9d} blocks  {_short(s.traceback[0].filename)}")


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/monitor/", "/lib/python3"):
        if marker in filename:
            return filename[filename.index(marker) :].lstrip("/")
    return filename


async def run(args: Any, work: Path, base_url: str) -> dict[str, Any]:
    from monitor.config import model as config_mod
    from monitor.daemon.root import Daemon
    from monitor.logs import SecretScrubber

    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    logging.getLogger("nexomon").setLevel(logging.ERROR)
    port = free_port()
    cfg_path = write_config(
        work,
        base_url,
        args.models,
        chat_interval=args.interval,
        models_interval=args.interval,
        listen_port=port,
    )
    daemon = Daemon(config_mod.load(cfg_path), scrubber=SecretScrubber(), config_path=cfg_path)
    task = asyncio.create_task(daemon.run())
    while daemon.web is None or not daemon.web.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    stop, sizes = threading.Event(), []
    scrape = threading.Thread(target=scraper, args=(port, stop, sizes), daemon=True)
    scrape.start()
    start = time.monotonic()
    first_snap_at = daemon._first_round_s() + args.interval + 5
    end_at = max(args.minutes * 60, first_snap_at + 60)
    rows: list[dict[str, Any]] = []
    snaps: list[tracemalloc.Snapshot] = []
    next_sample = 0.0
    while (now := time.monotonic() - start) < end_at:
        if not snaps and now >= first_snap_at:
            if tracemalloc.is_tracing():
                snaps.append(snapshot(args.frames))
            else:
                snaps.append(None)  # type: ignore[arg-type]
            rows.append(sample(now, daemon, "snapshot 1"))
        if now >= next_sample:
            rows.append(sample(now, daemon, ""))
            next_sample += SAMPLE_S
        await asyncio.sleep(1.0)
    rows.append(sample(time.monotonic() - start, daemon, "snapshot 2"))
    end_snap = snapshot(args.frames) if tracemalloc.is_tracing() else None
    # Cyclic garbage the frozen heap kept, then free heap glibc kept.
    gc.unfreeze()
    collected = gc.collect()
    after_gc = sample(time.monotonic() - start, daemon, f"full gc ({collected} freed)")
    rows.append(after_gc)
    gc_snap = snapshot(args.frames) if tracemalloc.is_tracing() else None
    trimmed = malloc_trim()
    rows.append(sample(time.monotonic() - start, daemon, f"malloc_trim ({trimmed})"))
    try:
        expo = exposition_bytes(daemon.exporter)
    except Exception as exc:  # another engineer's internals: report, never lose the run
        expo = {f"unreadable ({type(exc).__name__})": 0.0}
    stop.set()
    daemon.request_stop()
    await task
    probes = daemon.store.writer.written_total if daemon.store else 0
    return {
        "rows": rows,
        "snaps": (snaps[0] if snaps else None, end_snap, gc_snap),
        "expo": expo,
        "probes": probes,
        "scrape_kB": (sizes[-1] / 1024) if sizes else 0,
    }


def sample(t: float, daemon: Any, note: str) -> dict[str, Any]:
    traced = tracemalloc.get_traced_memory()[0] / 2**20 if tracemalloc.is_tracing() else 0.0
    writer = daemon.store.writer if daemon.store else None
    return {
        "t_s": round(t),
        "rss_MB": rss_mb(os.getpid()),
        "traced_MB": traced,
        "sqlite_MB": sqlite_mb(),
        "frozen": gc.get_freeze_count(),
        "tracked": len(gc.get_objects()),
        "gc_counts": "/".join(str(c) for c in gc.get_count()),
        "written": writer.written_total if writer else 0,
        "note": note,
    }


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--models", type=int, default=1000)
    ap.add_argument("--interval", type=float, default=12.0, help="chat and models interval, s")
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--frames", type=int, default=1, help="traceback depth tracemalloc keeps")
    ap.add_argument("--tracebacks", action="store_true", help="print the top growing tracebacks")
    ap.add_argument("--no-trace", action="store_true", help="RSS only, no tracemalloc")
    args = ap.parse_args()
    if not args.no_trace:
        tracemalloc.start(args.frames)
    work = Path(tempfile.mkdtemp(prefix="nexomon-memtrace-"))
    try:
        with Responder(models=args.models) as responder:
            out = asyncio.run(run(args, work, responder.base_url))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    emit(
        args,
        f"memory_trace: in-process Daemon, {args.models} models, chat+models every "
        f"{args.interval:g}s, {args.minutes:g} min (MALLOC_ARENA_MAX="
        f"{os.environ.get('MALLOC_ARENA_MAX', '-')}, PYTHONMALLOC="
        f"{os.environ.get('PYTHONMALLOC', '-')}, tracemalloc={not args.no_trace})",
        out["rows"],
        rows_written=out["probes"],
        last_scrape_kB=round(out["scrape_kB"]),
        exposition_cache={k: round(v, 2) for k, v in out["expo"].items()},
    )
    first, end, after_gc = out["snaps"]
    if first is not None and end is not None and not args.json:
        print_growth(first, end, args.top, args.tracebacks)
        print("\nafter unfreeze + full gc, growth since snapshot 1:")
        print_growth(first, after_gc, min(args.top, 8), tracebacks=False)
        print_largest(end, args.top)


if __name__ == "__main__":
    main()
