"""Response times are taken when the loop read the bytes, not when a coroutine resumed.

At many probes in flight the answers arrive together and our own loop
reaches them one by one; AiohttpTransport backdates the response-headers
and body-end events (``{"at": ...}``) to the socket read (the kernel's
receive time where it has one: tests/http/test_rxstamp.py), and PhaseClock
marks them there. Real sockets (gwfixtures' RawServer); the loop is blocked
on purpose to put our own delay between the read and the resumption.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
from gwfixtures import ServeFn, reply, serve_fixture  # noqa: F401 - the fixture

from monitor.http.aiohttp_transport import AiohttpTransport
from monitor.http.timing import BODY_END, HEADERS, SENT, PhaseClock
from monitor.results import Phases

CHAT = {"choices": [{"message": {"content": "ok"}}], "usage": {"prompt_tokens": 1}}
HEADERS_DONE = "http11.receive_response_headers.complete"
BODY_DONE = "http11.receive_response_body.complete"


class Recorder:
    """A trace callback keeping, per event, its ``at`` and when the callback ran."""

    def __init__(self, on_event: Any = None) -> None:
        self.events: dict[str, tuple[float | None, float]] = {}
        self.on_event = on_event

    async def __call__(self, name: str, info: dict[str, Any]) -> None:
        self.events[name] = (info.get("at"), time.perf_counter())
        if self.on_event is not None:
            self.on_event(self, name)


async def test_an_answer_read_while_another_is_handled_keeps_its_arrival_time(
    serve: ServeFn,
) -> None:
    both_in, both_out = threading.Barrier(2, timeout=10), threading.Barrier(2, timeout=10)
    loop_blocked, answered = threading.Event(), threading.Event()
    answer = reply(200, CHAT)

    def respond(req: Any, conn: Any, stop: threading.Event) -> bool:
        both_in.wait()  # the two requests are both in before either is answered
        loop_blocked.wait(20)  # and the answers reach a client loop that is busy
        ok = answer(req, conn, stop)
        both_out.wait()
        answered.set()
        return ok

    server = serve(respond)
    blocked: dict[str, float] = {}

    def on_event(rec: Recorder, name: str) -> None:
        # The first answer our loop resumes for: block the loop (our own delay).
        if name == HEADERS_DONE and not blocked:
            blocked["start"] = time.perf_counter()
            blocked["by"] = id(rec)
            time.sleep(0.2)

    transport = AiohttpTransport()
    recorders = [Recorder(on_event), Recorder(on_event)]

    async def one(rec: Recorder) -> bytes:
        request = httpx.Request(
            "POST", server.base_url + "/chat/completions", json={}, extensions={"trace": rec}
        )
        response = await transport.handle_async_request(request)
        try:
            return await response.aread()
        finally:
            await response.aclose()

    async def block_until_answered() -> None:
        deadline = time.monotonic() + 20
        while len(server.requests) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        # Both answers reach the socket while the loop is blocked, so the
        # next loop turn reads both before resuming either request.
        loop_blocked.set()
        assert answered.wait(20)
        time.sleep(0.05)

    try:
        bodies = await asyncio.gather(one(recorders[0]), one(recorders[1]), block_until_answered())
    finally:
        await transport.aclose()
    assert bodies[0] and bodies[1]
    second = next(rec for rec in recorders if id(rec) != blocked["by"])
    for event in (HEADERS_DONE, BODY_DONE):
        at, called = second.events[event]
        assert isinstance(at, float)
        # Read before the first request's handling blocked the loop; its
        # callback (our resumption) only ran after that.
        assert at < blocked["start"] < called
    sent_at, _ = second.events["http11.send_request_headers.started"]
    # Backdated to the request's write, which came before its answer arrived.
    assert isinstance(sent_at, float)
    assert sent_at <= second.events[HEADERS_DONE][0]  # type: ignore[operator]


async def test_phase_clock_marks_a_backdated_event_at_its_time() -> None:
    clock = PhaseClock()
    clock.mark(SENT)
    sent = time.perf_counter() - 1.0  # every stamp lies before the client's own marks
    await clock("http11.send_request_headers.started", {"at": sent})
    await clock(HEADERS_DONE, {"at": sent + 0.010})
    clock.mark(HEADERS)
    await clock(BODY_DONE, {"at": sent + 0.015})
    clock.mark(BODY_END)
    phases, duration = clock.phases()
    assert isinstance(phases, Phases)
    assert abs(phases.processing - 0.010) < 1e-9
    assert abs(phases.transfer - 0.005) < 1e-9
    assert duration is not None and abs(duration - 0.015) < 1e-9


async def test_body_end_falls_back_to_the_client_mark_without_a_transport_stamp() -> None:
    clock = PhaseClock()
    await clock("http11.send_request_headers.started", {})
    await clock(HEADERS_DONE, {"info": "not a time"})  # httpcore-style info: no "at"
    clock.mark(BODY_END)
    marks = clock._marks
    phases, duration = clock.phases()
    start, end = marks["send_request_headers.started"], marks[BODY_END]
    assert duration == end - start
    assert phases.processing == marks["receive_response_headers.complete"] - start


async def test_a_capped_body_is_timed_to_the_stop_not_to_a_transport_stamp() -> None:
    clock = PhaseClock()
    await clock("http11.send_request_headers.started", {})
    start = clock._marks["send_request_headers.started"]
    await clock(BODY_DONE, {"at": start + 0.001})
    # No BODY_END: the exchange stopped (cap, timeout) at ``stop``.
    _, duration = clock.phases(stop=start + 0.5)
    assert duration == 0.5
