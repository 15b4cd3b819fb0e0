"""The strict SSE parser on hostile input: any split, every line ending, bounded memory."""

from __future__ import annotations

import pytest

from monitor.gateway.sse import SseEvent, SseParser

STREAM = (
    b": keep-alive comment\n"
    b"id: 7\nretry: 1000\nx-vendor: ignored\n"
    b'data: {"a": 1}\n\n'
    b"event: error\ndata: first line\ndata:second line\ndata\n\n"
    b"\n\n"  # blank lines with no data dispatch nothing
    b"data: [DONE]\n\n"
)
EVENTS = [("", b'{"a": 1}'), ("error", b"first line\nsecond line\n"), ("", b"[DONE]")]


def parse(chunks: list[bytes]) -> tuple[list[SseEvent], SseParser]:
    parser = SseParser(max_line=1024)
    events: list[SseEvent] = []
    for i, chunk in enumerate(chunks):
        events += parser.feed(chunk, float(i))
    parser.finish()
    return events, parser


def shape(events: list[SseEvent]) -> list[tuple[str, bytes]]:
    return [(e.event, e.data) for e in events]


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending_and_every_split_gives_the_same_events(eol: bytes) -> None:
    stream = STREAM.replace(b"\n", eol)
    whole, parser = parse([stream])
    assert shape(whole) == EVENTS and parser.error is None
    one_byte_at_a_time, parser = parse([stream[i : i + 1] for i in range(len(stream))])
    assert shape(one_byte_at_a_time) == EVENTS and parser.error is None
    for cut in range(1, len(stream)):
        halves, parser = parse([stream[:cut], stream[cut:]])
        assert shape(halves) == EVENTS and parser.error is None, cut


def test_a_cr_ending_one_read_and_an_lf_starting_the_next_are_one_line_end() -> None:
    events, parser = parse([b"data: x\r", b"\ndata: y\r\n\r\n"])
    # Had the LF been a second line end, "x" would be an event of its own.
    assert shape(events) == [("", b"x\ny")] and parser.error is None


def test_an_event_is_stamped_with_the_read_that_completed_it() -> None:
    events, _ = parse([b"data: a", b"\n", b"\ndata: b\n\n"])
    assert [(e.data, e.at) for e in events] == [(b"a", 2.0), (b"b", 2.0)]


def test_a_bom_is_dropped_once_even_split() -> None:
    events, parser = parse([b"\xef", b"\xbb\xbfdata: x\n\n"])
    assert shape(events) == [("", b"x")] and parser.error is None
    events, _ = parse([b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n"])  # a second one is a field name
    assert events == []


def test_only_one_leading_space_is_taken_off_a_value() -> None:
    events, _ = parse([b"data:  two spaces\n\n"])
    assert shape(events) == [("", b" two spaces")]


def test_a_line_longer_than_the_bound_is_an_error_and_the_parser_stops() -> None:
    parser = SseParser(max_line=1024)
    assert parser.feed(b"data: " + b"x" * 600, 0.0) == []
    assert parser.error is None
    assert parser.feed(b"x" * 600, 1.0) == []  # no line end in 1,206 bytes
    assert parser.error == "a line longer than 1024 bytes"
    assert parser.feed(b"\n\ndata: later\n\n", 2.0) == []  # nothing after an error


def test_an_event_whose_data_lines_add_up_past_the_bound_is_an_error() -> None:
    parser = SseParser(max_line=1024)
    parser.feed(b"data: " + b"x" * 500 + b"\n", 0.0)
    parser.feed(b"data: " + b"x" * 500 + b"\n", 0.0)
    assert parser.error is None
    assert parser.feed(b"data: " + b"x" * 500 + b"\n\n", 0.0) == []
    assert parser.error is not None and "data is longer" in parser.error


def test_megabytes_without_a_line_end_are_refused_after_the_bound() -> None:
    parser = SseParser(max_line=4096)
    for i in range(100):  # 6.4 MB of hostile bytes
        parser.feed(b"y" * 65536, float(i))
    assert parser.error == "a line longer than 4096 bytes"
    assert not parser.pending  # nothing kept after the error


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"event: \xff\xfe\ndata: x\n\n", "an event type that is not ASCII"),
        (b"event: " + b"e" * 65 + b"\n", "an event type that is too long or not printable"),
        (b"\xc3\xa9vent: x\n", "a field name that is not ASCII"),
    ],
)
def test_field_names_and_event_types_must_be_plain_ascii(raw: bytes, error: str) -> None:
    events, parser = parse([raw])
    assert events == [] and parser.error == error


@pytest.mark.parametrize("tail", [b"data: {}", b"data: {}\n", b"data: {}\r"])
def test_a_stream_cut_in_the_middle_of_an_event_is_an_error_at_the_end(tail: bytes) -> None:
    events, parser = parse([b"data: 1\n\n", tail])
    assert shape(events) == [("", b"1")]
    assert parser.error == "the stream ended in the middle of an event"


def test_a_stream_ending_after_complete_events_is_clean() -> None:
    events, parser = parse([b"data: 1\n\n: trailing comment\n"])
    assert shape(events) == [("", b"1")] and parser.error is None
