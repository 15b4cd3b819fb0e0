"""Interpreter settings for the long-running daemon: GIL hand-off and heap scans.

Both were found by measuring scheduler lag bursts at 400 probes/s (see
benchmarks/README.md); neither changes what the daemon does, only when the
interpreter does its own work.

* **GIL switch interval 0.1 ms** (CPython's default is 5 ms). The event
  loop shares the GIL with the SQLite writer thread (and, before /metrics
  rendered on the loop, with a render thread). Every socket call the loop
  makes releases the GIL; while another thread is busy, getting it back can
  take a whole switch interval, so a loop turn with a few dozen socket calls
  stalled for tens of ms during each scrape. A shorter interval bounds each
  wait; the other threads pay a few µs per forced switch, only while they
  compete. Measured with benchmarks/throughput.py (scrape every 5 s of
  1,200 fresh models, then in a thread): lag p99 at 1,200 probes/s 74 ms
  with 1 ms, 15-22 ms with 0.2-0.1 ms; at 400/s, 53 ms with the default
  5 ms, 18 ms with 1 ms.
* **Frozen long-lived heap.** A full (oldest generation) garbage collection
  scans every tracked object: ~190,000 at 400 models (prometheus children,
  their locks, the scheduler's jobs), a single pause of ~100 ms on this
  machine, which showed up as the worst scheduler lags. Once the daemon has
  run every job once, ``HeapSettler`` moves everything tracked (the
  long-lived state) out of the collector's scans with ``gc.freeze()``, a
  pause of microseconds. Reference counting still frees frozen objects;
  only cyclic garbage among them waits for the next ``settle()`` (every
  ``every_s``), which unfreezes, collects (one full pause) and freezes
  again. So what the daemon makes and drops all the time must not die in
  a cycle: closed HTTP connections did (~0.7 MB a minute at 10,000 models,
  chat every 5 minutes) until monitor.http.connection broke their cycles.

* **Survivors of a slow full collection are frozen too**
  (``SurvivorFreezer``). Long-lived state created after that first freeze
  (the /metrics render plans of the first scrape, jobs of models listed
  later) is scanned again by every full collection, which at 2,000 probes/s
  ran every 2-4 s for up to ~80 ms (a 2 ms loop ticker caught the stalls
  inside ``gc``). A full collection that took longer than ``slow_s`` has
  just removed the garbage, so what it kept is long-lived: it is frozen
  right after (on the loop, microseconds).

* **glibc's allocator, fixed** (``tune_malloc``, once per ``nexomon run``
  process, not per Daemon: it cannot be undone). At 10,000 models every
  scrape builds ~10 MB of text and every ``/api/v1/status`` ~10 MB of JSON.
  glibc raises its mmap threshold to the size of each large block freed, so
  from the second scrape on these buffers came from the heap instead of
  mmap, and with one arena per thread that ever allocated (up to 8 per
  core) the freed space stayed fragmented in the process: RSS rose in
  steps of ~50 MB to 467 MB in 10 minutes of scrapes every 15 s. A fixed
  128 KiB threshold (blocks above it always go back to the kernel when
  freed) and 2 arenas: 329 MB in the same run. The ~2 MB a minute it still
  grew came with the status window's recomputation from scratch, gone
  with ``store/status_tally.py`` (benchmarks/scale.py; benchmarks/README.md,
  issue 20).

``tune()`` / ``restore()`` bracket ``Daemon.run``: the previous switch
interval comes back and the heap is unfrozen on exit, so a daemon run inside
another process (tests, benchmarks) leaves the interpreter as it found it.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import os
import resource
import sys
import time
from collections.abc import Mapping

log = logging.getLogger("nexomon.runtime")

SWITCH_INTERVAL_S = 0.0001
SETTLE_EVERY_S = 3600.0
SLOW_FULL_COLLECTION_S = 0.005
MMAP_THRESHOLD_BYTES = 128 * 1024
ARENA_MAX = 2
# mallopt(3) parameters, from glibc's malloc.h.
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def tune_malloc(
    mmap_threshold: int = MMAP_THRESHOLD_BYTES,
    arena_max: int = ARENA_MAX,
    environ: Mapping[str, str] | None = None,
) -> dict[str, int]:
    """Fixes glibc's mmap threshold and arena count (see the module docstring).

    Returns the parameters set, by their environment names. A setting the
    operator made (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_ARENA_MAX`` or any
    ``GLIBC_TUNABLES``) wins: nothing is set then. Not glibc (musl, macOS):
    nothing is set, ``{}``. Call it before the daemon starts its threads.
    """
    env = os.environ if environ is None else environ
    if "GLIBC_TUNABLES" in env:
        return {}
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - glibc's own symbol: not musl's mallopt stub
    except (OSError, AttributeError):
        return {}
    done: dict[str, int] = {}
    for name, param, value in (
        ("MALLOC_MMAP_THRESHOLD_", _M_MMAP_THRESHOLD, mmap_threshold),
        ("MALLOC_ARENA_MAX", _M_ARENA_MAX, arena_max),
    ):
        if name not in env and mallopt(param, value) == 1:
            done[name] = value
    return done


def tune(switch_interval_s: float = SWITCH_INTERVAL_S) -> float:
    """Sets the GIL switch interval; returns the previous one, for ``restore``."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(switch_interval_s)
    return previous


def raise_open_file_limit(wanted: int = 65536) -> int:
    """Raises the soft RLIMIT_NOFILE towards ``wanted`` (at most the hard limit); returns it.

    The HTTP server keeps up to ``web.MAX_CONNECTIONS`` connections so that
    idle and slow clients cannot lock scrapes out, and many distros start
    services with a soft limit of 1,024 open files. Raising the soft limit
    up to the hard one needs no privilege (as Go's runtime does at start).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d: %s", soft, exc)
    return soft


def restore(previous_switch_interval_s: float) -> None:
    """Undoes ``tune`` and any ``settle``: the interpreter's own defaults again."""
    sys.setswitchinterval(previous_switch_interval_s)
    gc.unfreeze()


def settle(full: bool = True) -> float:
    """Freezes every tracked object; returns the pause in seconds.

    ``full``: unfreeze and collect first, so cyclic garbage among the frozen
    objects (e.g. what a reload replaced) is reclaimed; a full collection's
    pause. Without it only the freeze runs: garbage not yet collected is
    frozen too and waits for the next full settle.
    """
    started = time.perf_counter()
    if full:
        gc.unfreeze()
        gc.collect()
    gc.freeze()
    return time.perf_counter() - started


class HeapSettler:
    """Freezes after ``first_s`` (every job has run once), then a full settle every ``every_s``."""

    def __init__(self, first_s: float, every_s: float = SETTLE_EVERY_S) -> None:
        self.first_s = first_s
        self.every_s = every_s
        self.runs = 0

    async def run(self) -> None:
        delay, full = self.first_s, False  # no full-collection pause at startup
        while True:
            await asyncio.sleep(delay)
            pause = settle(full)
            self.runs += 1
            log.debug(
                "heap settled: %d objects frozen in %.0f ms", gc.get_freeze_count(), pause * 1e3
            )
            delay, full = self.every_s, True


class SurvivorFreezer:
    """Freezes the heap on ``loop`` right after a full collection slower than ``slow_s``.

    A context manager: installs a ``gc.callbacks`` hook on enter, removes it
    on exit. Collections may run on any thread; the freeze is handed to the
    loop (``call_soon_threadsafe``), at most one pending at a time.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, slow_s: float = SLOW_FULL_COLLECTION_S
    ) -> None:
        self._loop = loop
        self._slow_s = slow_s
        self._started: float | None = None
        self._pending = False
        self.freezes = 0

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
            return
        started, self._started = self._started, None
        if started is None or self._pending or time.perf_counter() - started <= self._slow_s:
            return
        self._pending = True
        try:
            self._loop.call_soon_threadsafe(self._freeze)
        except RuntimeError:  # the loop is closed: nothing left to protect
            self._pending = False

    def _freeze(self) -> None:
        self._pending = False
        gc.freeze()
        self.freezes += 1

    def __enter__(self) -> SurvivorFreezer:
        gc.callbacks.append(self._on_gc)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
