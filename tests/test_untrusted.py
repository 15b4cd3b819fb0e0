"""monitor.untrusted (the boundary for gateway text) and the log pipeline's use of it.

clean(): valid UTF-8, bounded, no API key in any encoding; escape_controls():
one visible line for people; clean_json(): every string of a parsed body.
Then the logging side: the text formatter escapes, the JSON formatter stays
one line, the excepthooks route uncaught exceptions through the scrubber.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import threading
from collections.abc import Callable, Iterator
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor import logs
from monitor.gateway import headers
from monitor.logs import SecretScrubber, setup_logging
from monitor.untrusted import REDACTED, UNBOUNDED, clean, clean_json, escape_controls, redact

KEY = "sk-abc/def+ghi-0123456789"


def _pct_lower(text: str) -> str:
    return re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), text)


# Every way the key may come back: raw, JSON-escaped, percent-encoded, mixed.
ECHOES: dict[str, Callable[[str], str]] = {
    "raw": lambda k: k,
    "json slash": lambda k: k.replace("/", "\\/"),
    "json \\u lower": lambda k: "".join(f"\\u{ord(c):04x}" for c in k),
    "json \\u upper": lambda k: "".join(f"\\u{ord(c):04X}" for c in k),
    "json \\u one char": lambda k: k.replace("/", "\\u002F"),
    "json doubled": lambda k: k.replace("/", "\\\\/"),  # JSON in a JSON string, repr()
    "quote safe=''": lambda k: quote(k, safe=""),
    "quote safe='' lower hex": lambda k: _pct_lower(quote(k, safe="")),
    "quote default": lambda k: quote(k),
    "quote twice": lambda k: quote(quote(k, safe=""), safe=""),
    "html hex": lambda k: "".join(f"&#x{ord(c):X};" for c in k),
    "html decimal": lambda k: "".join(f"&#{ord(c)};" for c in k),
    "mixed": lambda k: k[:3] + "".join(f"\\u{ord(c):04x}" for c in k[3:6]) + quote(k[6:], safe=""),
}


# -- clean --------------------------------------------------------------------


def test_clean_text_comes_back_as_the_same_object() -> None:
    for text in ("gpt-4o-mini", "meta-llama/Llama-3.1-8B", "modèle-français ✓", ""):
        assert clean(text, 255, KEY) is text
        assert clean(text, 255) is text


@pytest.mark.parametrize("echo", ECHOES.values(), ids=ECHOES.keys())
def test_every_encoding_of_the_key_is_redacted(echo: Callable[[str], str]) -> None:
    text = f"Incorrect API key provided: {echo(KEY)}. Check it."
    assert echo(KEY) != KEY or echo is ECHOES["raw"]
    assert clean(text, 1000, KEY) == f"Incorrect API key provided: {REDACTED}. Check it."
    # In a non-ASCII text as well (the slow path), and twice in one text.
    assert clean(f"clé {echo(KEY)} {echo(KEY)}", 1000, KEY) == f"clé {REDACTED} {REDACTED}"


def test_redaction_comes_before_the_cut() -> None:
    text = "x" * 30 + KEY
    out = clean(text, 35, KEY)
    assert len(out) == 35 and KEY[:4] not in out
    assert out == "x" * 30 + REDACTED[:4] + "…"


def test_no_secret_redacts_nothing() -> None:
    assert clean(f"a {KEY}", 100, None) == f"a {KEY}"
    assert clean(f"a {KEY}", 100, "") == f"a {KEY}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a\ud800b", "a\ufffdb"),
        ("\udfff", "\ufffd"),
        ("\ud83d\ude00 pair halves stay apart", "\ufffd\ufffd pair halves stay apart"),
        ("😀 a real pair is fine", "😀 a real pair is fine"),
    ],
)
def test_lone_surrogates_become_replacement_characters(text: str, expected: str) -> None:
    out = clean(text, 100)
    assert out == expected
    out.encode("utf-8")  # no UnicodeEncodeError


@pytest.mark.parametrize(
    ("limit", "expected"),
    [(10, "abcdefghi…"), (26, "abcdefghijklmnopqrstuvwxyz"), (1, "…"), (0, "")],
)
def test_length_is_bounded(limit: int, expected: str) -> None:
    assert clean("abcdefghijklmnopqrstuvwxyz", limit) == expected


def test_controls_are_kept_for_sinks_that_escape_them() -> None:
    assert clean("a\nb\x1b[31m", 100) == "a\nb\x1b[31m"


@given(st.text(), st.integers(min_value=1, max_value=300), st.sampled_from(list(ECHOES)))
def test_any_text_comes_out_valid_bounded_and_keyless(text: str, limit: int, form: str) -> None:
    echoed = text[: len(text) // 2] + ECHOES[form](KEY) + text[len(text) // 2 :]
    out = clean(echoed, limit, KEY)
    assert len(out) <= limit
    out.encode("utf-8")
    assert KEY not in out and ECHOES[form](KEY) not in out


def test_redact_keeps_length_and_controls() -> None:
    assert redact(f"x\n{quote(KEY, safe='')}" + "y" * 500, KEY) == f"x\n{REDACTED}" + "y" * 500
    assert redact("anything", "") == "anything"


# -- clean_json ---------------------------------------------------------------


def test_clean_json_cleans_every_string_and_key_in_place() -> None:
    body = json.loads(
        '{"error": {"message": "bad key sk-abc\\/def+ghi-0123456789", "code": null},'
        ' "data": [{"id": "a\\ud800"}, 7, ["sk-abc%2Fdef%2Bghi-0123456789"]],'
        ' "k\\udc00": true}'
    )
    out = clean_json(body, KEY)
    assert out is body
    assert out == {
        "error": {"message": f"bad key {REDACTED}", "code": None},
        "data": [{"id": "a\ufffd"}, 7, [REDACTED]],
        "k\ufffd": True,
    }
    assert clean_json(f"top {KEY}", KEY) == f"top {REDACTED}"
    assert clean_json(3, KEY) == 3


def test_clean_json_walks_any_depth_without_recursion() -> None:
    deep: list[object] = ["\ud800"]
    for _ in range(100_000):
        deep = [deep]
    clean_json(deep, KEY)
    node: object = deep
    while isinstance(node, list) and isinstance(node[0], list):
        node = node[0]
    assert node == ["\ufffd"]


def test_strings_are_not_cut_in_a_body() -> None:
    assert clean_json(["x" * 100_000], KEY) == ["x" * 100_000]
    assert clean("x" * 100_000, UNBOUNDED) == "x" * 100_000


# -- escape_controls ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a\nb", "a\\nb"),
        ("a\r\nb\tc", "a\\r\\nb\\tc"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),
        ("nul\x00del\x7f", "nul\\x00del\\x7f"),
        ("c1 \x85 \x9b", "c1 \\x85 \\x9b"),
        ("line\u2028para\u2029", "line\\u2028para\\u2029"),
        ("bidi \u202etxt.exe\u202c \u2066x\u2069", "bidi \\u202etxt.exe\\u202c \\u2066x\\u2069"),
    ],
)
def test_controls_are_shown_as_escapes(text: str, expected: str) -> None:
    out = escape_controls(text)
    assert out == expected
    assert len(out.splitlines()) <= 1


@pytest.mark.parametrize(
    "text",
    ["plain", "", "back\\slash \\n stays", "modèle ✓ 😀", "nb\u00a0sp", "zwj 👩\u200d💻", "a b"],
)
def test_ordinary_text_is_unchanged(text: str) -> None:
    assert escape_controls(text) is text or escape_controls(text) == text


@given(st.text())
def test_escaped_text_is_one_line_without_controls(text: str) -> None:
    out = escape_controls(text)
    assert len(out.splitlines()) <= 1
    assert not re.search("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]", out)


# -- one_line (headers) uses the same boundary ---------------------------------


def test_one_line_redacts_every_encoding_and_blanks_controls() -> None:
    assert headers.one_line(f"req-{quote(KEY, safe='')}", 128, KEY) == f"req-{REDACTED}"
    assert headers.one_line("a\x85b\u202ec\x1bd\ud800", 50) == "a b c d\ufffd"
    assert headers.REDACTED is logs.REDACTED is REDACTED


def test_oversized_counts_are_not_counts() -> None:
    assert headers.parse_count("9" * 5000) is None
    assert headers.parse_count(str(2**63)) is None
    assert headers.parse_count(str(2**63 - 1)) == 2**63 - 1


# -- logging ------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """setup_logging changes process-wide state: put it back after the test."""
    names = ("nexomon", "apscheduler", "uvicorn.error")
    loggers = [logging.getLogger(n) for n in names]
    saved = [(lg, list(lg.handlers), lg.level, lg.propagate) for lg in loggers]
    hooks = (sys.excepthook, threading.excepthook)
    try:
        yield
    finally:
        sys.excepthook, threading.excepthook = hooks
        for logger, handlers, level, propagate in saved:
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


FORGED = "2000-01-01 00:00:00,000 ERROR nexomon: forged"


def _text_log() -> tuple[io.StringIO, SecretScrubber]:
    stream = io.StringIO()
    scrubber = setup_logging("debug", "text", stream)
    scrubber.add(KEY)
    return stream, scrubber


@pytest.mark.usefixtures("restore_logging")
def test_text_log_escapes_controls_in_message_and_exception() -> None:
    stream, _ = _text_log()
    log = logging.getLogger("nexomon.test")
    log.warning("model %s gone", f"evil\n{FORGED} \x1b[31m\x1b]0;t\x07")
    try:
        try:
            raise KeyError(f"inner\n{FORGED} {KEY.replace('/', chr(92) + '/')}")
        except KeyError as exc:
            raise RuntimeError(f"outer\x1b[2J\n{FORGED}") from exc
    except RuntimeError:
        log.exception("failed")
    text = stream.getvalue()
    assert "\x1b" not in text and "\x07" not in text
    assert not [line for line in text.splitlines() if line.startswith(FORGED)], text
    assert f"model evil\\n{FORGED} \\x1b[31m\\x1b]0;t\\x07 gone" in text
    assert f"RuntimeError: outer\\x1b[2J\\n{FORGED}" in text
    assert KEY not in text and REDACTED in text
    # The traceback keeps its own line breaks.
    assert "\nTraceback (most recent call last):\n  File " in text
    assert "\nThe above exception was the direct cause of the following exception:\n" in text


@pytest.mark.usefixtures("restore_logging")
def test_text_log_without_secrets_escapes_too() -> None:
    stream = io.StringIO()
    setup_logging("info", "text", stream)  # no key registered: the scrubber is idle
    logging.getLogger("nexomon").error("x\ny", exc_info=(ValueError, ValueError("a\nb"), None))
    assert stream.getvalue().splitlines()[0].endswith("x\\ny")
    assert "ValueError: a\\nb" in stream.getvalue()


@pytest.mark.usefixtures("restore_logging")
def test_json_log_is_one_line_per_record() -> None:
    stream = io.StringIO()
    setup_logging("info", "json", stream).add(KEY)
    logging.getLogger("nexomon").warning("a\nb\x1b[31m c\u2028d\x85 %s", quote(KEY, safe=""))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["msg"] == f"a\nb\x1b[31m c\u2028d\x85 {REDACTED}"
    assert "\u2028" not in lines[0] and "\x85" not in lines[0]


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_thread_exceptions_go_through_the_log(fmt: str) -> None:
    stream = io.StringIO()
    setup_logging("info", fmt, stream)
    setup_logging("info", fmt, stream).add(KEY)  # twice: still one handler, one hook

    def boom() -> None:
        raise RuntimeError(f"saw {KEY} and {quote(KEY)}\n{FORGED}")

    thread = threading.Thread(target=boom, name="nexomon-writer")
    thread.start()
    thread.join()
    text = stream.getvalue()
    assert KEY not in text and quote(KEY) not in text
    assert len(logging.getLogger("nexomon").handlers) == 1
    if fmt == "json":
        (entry,) = [json.loads(line) for line in text.splitlines()]
        assert entry["msg"] == "uncaught exception in thread nexomon-writer"
        assert entry["level"] == "error"
        assert f"RuntimeError: saw {REDACTED} and {REDACTED}\n{FORGED}" in entry["exc"]
    else:
        assert "ERROR nexomon: uncaught exception in thread nexomon-writer\nTraceback" in text
        assert f"RuntimeError: saw {REDACTED} and {REDACTED}\\n{FORGED}" in text


@pytest.mark.usefixtures("restore_logging")
def test_thread_exit_is_not_an_error() -> None:
    stream = io.StringIO()
    setup_logging("info", "json", stream)
    thread = threading.Thread(target=sys.exit, name="quits")
    thread.start()
    thread.join()
    assert stream.getvalue() == ""


@pytest.mark.usefixtures("restore_logging")
def test_main_thread_hook_logs_and_leaves_ctrl_c_to_python(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = io.StringIO()
    setup_logging("info", "json", stream).add(KEY)
    try:
        raise ValueError(f"bad {KEY}")
    except ValueError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    (entry,) = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert entry["msg"] == "uncaught exception in thread MainThread"
    assert f"ValueError: bad {REDACTED}" in entry["exc"]
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    assert "KeyboardInterrupt" in capsys.readouterr().err  # Python's own hook printed it
    assert len(stream.getvalue().splitlines()) == 1
