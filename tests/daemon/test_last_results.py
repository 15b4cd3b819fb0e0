"""The last results: recorded on the loop, read whole from the status routes' threads."""

from __future__ import annotations

import gc
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import write_config

from monitor.config import model as config_mod
from monitor.daemon.last_results import LastResults
from monitor.daemon.root import Daemon
from monitor.logs import SecretScrubber
from tests.store.factory import chat


def test_the_last_put_wins_and_a_snapshot_does_not_follow_later_puts() -> None:
    results = LastResults()
    first, newer, other = chat(1), chat(2), chat(3, model="other")
    results.put(first)
    results.put(newer)
    taken = results.snapshot()
    results.put(other)
    assert taken == {("nexorouter", "chat", "deepseek-v4-flash"): newer}
    assert list(results.snapshot()) == [
        ("nexorouter", "chat", "deepseek-v4-flash"),
        ("nexorouter", "chat", "other"),
    ]
    assert len(results) == 2


@pytest.fixture
def loop_writes_at_every_collection() -> Iterator[Any]:
    """Stands in for the event loop recording a new job's first result whenever
    the reading thread's allocations start a garbage collection: the point where
    the interpreter can switch threads in the middle of a C-level copy."""
    state: dict[str, Any] = {"reader": None, "on_result": None, "writes": 0}

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase != "start" or threading.current_thread() is not state["reader"]:
            return
        if state["writes"] >= 50:
            return
        state["writes"] += 1
        result = chat(10_000 + state["writes"], model=f"new-{state['writes']}")
        loop = threading.Thread(target=state["on_result"], args=(result,))
        loop.start()
        loop.join(0.2)  # blocked by the reader's lock: the reader goes on

    gc.callbacks.append(on_gc)
    try:
        yield state
    finally:
        gc.callbacks.remove(on_gc)


def test_the_status_body_is_whole_while_the_loop_records_results(
    tmp_path: Path, loop_writes_at_every_collection: Any
) -> None:
    """Failed before LastResults: the status thread iterated the loop's dict and a
    result recorded mid-copy raised "dictionary changed size during iteration"
    (a 500 from /api/v1/status at 10,000 models)."""
    path = write_config(tmp_path, "http://127.0.0.1:9/v1")
    daemon = Daemon(config_mod.load(path), scrubber=SecretScrubber(), config_path=path)
    for i in range(5_000):
        daemon._on_result(chat(i, model=f"m{i:05d}"))
    state = loop_writes_at_every_collection
    state["on_result"] = daemon._on_result
    bodies: list[bytes] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            bodies.append(daemon._status())
        except BaseException as exc:  # reported below, with the thread's error
            errors.append(exc)

    reader = threading.Thread(target=read)
    state["reader"] = reader
    reader.start()
    reader.join(60)
    daemon.status_window.close()  # the request started its keeper: it must not outlive the test
    assert errors == []
    assert state["writes"] > 0  # the loop did write while the body was built
    document = json.loads(bodies[0])
    models = [row["model"] for row in document["last_results"]]
    assert models[:5_000] == [f"m{i:05d}" for i in range(5_000)]
    assert len(daemon.last_results) == 5_000 + state["writes"]


def test_while_status_is_asked_new_results_are_encoded_before_the_next_request(
    tmp_path: Path,
) -> None:
    """The status keeper refreshes the results' encodings (ResultsJson.refresh), so a
    request finds only the few seconds of results since the last warm-up to encode."""
    path = write_config(tmp_path, "http://127.0.0.1:9/v1")
    daemon = Daemon(config_mod.load(path), scrubber=SecretScrubber(), config_path=path)
    daemon.status_window.warm_every_s = 0.05
    daemon._on_result(chat(1, model="a"))
    daemon._status()  # someone asks: the keeper starts
    newer = chat(2, model="a")
    daemon._on_result(newer)
    deadline = time.monotonic() + 10
    encoded = daemon.results_json._encoded
    while encoded.get(("nexorouter", "chat", "a"), (None,))[0] is not newer:
        assert time.monotonic() < deadline, "the keeper never encoded the new result"
        time.sleep(0.02)
        encoded = daemon.results_json._encoded
    daemon.status_window.close()
    assert json.loads(daemon._status())["last_results"] == [newer.to_json()]
