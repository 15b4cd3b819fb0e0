"""monitor.daemon.runtime: the GIL switch interval and heap freezing (undone on exit), malloc."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import weakref

from monitor.daemon import runtime


def test_tune_sets_the_switch_interval_and_restore_undoes_it_and_unfreezes() -> None:
    before = sys.getswitchinterval()
    previous = runtime.tune(0.002)
    try:
        assert previous == before
        assert sys.getswitchinterval() == 0.002
        runtime.settle()
        assert gc.get_freeze_count() > 0
    finally:
        runtime.restore(previous)
    assert sys.getswitchinterval() == before
    assert gc.get_freeze_count() == 0


def test_settle_collects_cyclic_garbage_left_among_frozen_objects() -> None:
    class Node:
        other: Node | None = None

    try:
        a, b = Node(), Node()
        a.other, b.other = b, a
        ref = weakref.ref(a)
        runtime.settle()  # the live cycle is frozen with the rest
        del a, b  # now garbage, but frozen objects are not scanned...
        gc.collect()
        assert ref() is not None
        runtime.settle()  # ...until settle unfreezes, collects and freezes again
        assert ref() is None
    finally:
        gc.unfreeze()


async def test_heap_settler_runs_after_the_first_round_then_periodically() -> None:
    settler = runtime.HeapSettler(first_s=0.0, every_s=0.01)
    task = asyncio.create_task(settler.run())
    try:
        for _ in range(500):
            if settler.runs >= 2:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        gc.unfreeze()
    assert settler.runs >= 2


async def test_survivor_freezer_freezes_after_a_slow_full_collection_only() -> None:
    loop = asyncio.get_running_loop()
    keep = [[i] for i in range(50_000)]  # long-lived and tracked (lists always are)
    try:
        with runtime.SurvivorFreezer(loop, slow_s=3600.0) as never:
            gc.collect()
            await asyncio.sleep(0)
        assert never.freezes == 0 and gc.get_freeze_count() == 0
        with runtime.SurvivorFreezer(loop, slow_s=0.0) as freezer:
            gc.collect(1)  # a young collection is not a full one
            await asyncio.sleep(0)
            assert freezer.freezes == 0
            gc.collect()
            for _ in range(100):
                if freezer.freezes:
                    break
                await asyncio.sleep(0)
        assert freezer.freezes == 1
        assert gc.get_freeze_count() >= len(keep)
        assert freezer._on_gc not in gc.callbacks
    finally:
        gc.unfreeze()


def test_the_open_file_limit_is_raised_towards_the_hard_limit() -> None:
    # In a child process: the soft limit starts low, as many services start.
    code = (
        "import resource\n"
        "from monitor.daemon import runtime\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "got = runtime.raise_open_file_limit(4096)\n"
        "now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]\n"
        "want = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)\n"
        "print(got == now == want)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True", out.stderr


# In a fresh interpreter: allocate and free a 16 MB block, then ask for 4 MB and
# see where glibc puts it (mallinfo2: ``arena`` is heap from brk, ``hblkhd`` mmapped).
_WHERE_4MB_GOES = """
import ctypes, ctypes.util, json, sys
from monitor.daemon import runtime
done = runtime.tune_malloc() if sys.argv[1] == "tuned" else {}
libc = ctypes.CDLL(ctypes.util.find_library("c"))
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.free(libc.malloc(16 << 20))  # glibc's dynamic threshold rises to 16 MB here
before = libc.mallinfo2()
block = libc.malloc(4 << 20)
after = libc.mallinfo2()
print(json.dumps({"set": done, "mmapped": after.hblkhd - before.hblkhd}))
"""


def _where_4mb_goes(mode: str) -> dict[str, object]:
    import json
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_"))}
    out = subprocess.run(
        [sys.executable, "-c", _WHERE_4MB_GOES, mode],
        env=env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return json.loads(out.stdout)


def test_tune_malloc_keeps_large_buffers_out_of_the_heap_after_a_larger_one_was_freed() -> None:
    # Untuned glibc serves the 4 MB from the heap (the freed 16 MB raised its
    # mmap threshold): the fragmentation that grew the daemon's RSS at 10,000
    # models (benchmarks/scale.py). Tuned, it is mmapped and goes back when freed.
    assert _where_4mb_goes("default") == {"set": {}, "mmapped": 0}
    tuned = _where_4mb_goes("tuned")
    assert tuned["set"] == {"MALLOC_MMAP_THRESHOLD_": 128 * 1024, "MALLOC_ARENA_MAX": 2}
    assert isinstance(tuned["mmapped"], int) and tuned["mmapped"] >= 4 << 20  # + a page


def test_tune_malloc_leaves_an_operators_own_setting_alone() -> None:
    assert runtime.tune_malloc(environ={"GLIBC_TUNABLES": "glibc.malloc.arena_max=4"}) == {}
    only_threshold = runtime.tune_malloc(environ={"MALLOC_ARENA_MAX": "4"})
    assert only_threshold == {"MALLOC_MMAP_THRESHOLD_": 128 * 1024}
