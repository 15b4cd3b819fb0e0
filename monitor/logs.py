"""Logging set-up: one line per event, text or JSON, secrets scrubbed.

``setup_logging`` installs one stderr handler on the ``nexomon`` logger tree
and returns its ``SecretScrubber``; whoever reads an API key registers it
there, so that even a traceback that somehow carries the key prints
``[REDACTED]`` instead (defence in depth: the key is never put in a message
on purpose), in every encoding ``monitor.untrusted.redact`` knows.

Every line is one line: the text format shows control characters inside a
message or an exception's text as escapes (``monitor.untrusted.escape_controls``),
so a model id holding ``\\n`` or ``ESC[31m`` can neither forge a log line nor
drive the terminal; the JSON format is one ``json.dumps`` object. Uncaught
exceptions of the main thread and of other threads go through the same
handler (``sys.excepthook`` and ``threading.excepthook``), scrubbed and
formatted like any other error.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TextIO

from monitor.untrusted import REDACTED, escape_controls, redact

__all__ = ["REDACTED", "JsonFormatter", "SecretScrubber", "TextFormatter", "setup_logging"]

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


class SecretScrubber(logging.Filter):
    """Replaces every registered secret in a record's final text.

    ``format_exception`` renders a record's exception before it is scrubbed
    (the handler's formatter's, so the text format keeps its escaping).
    """

    def __init__(self, format_exception: Callable[[Any], str] | None = None) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._format_exception = format_exception or logging.Formatter().formatException

    def add(self, secret: str) -> None:
        # Very short strings would redact ordinary words; keys are long.
        if len(secret) >= 6:
            self._secrets.add(secret)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = redact(text, secret)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = self.scrub(record.getMessage())
        record.msg, record.args = message, None
        if record.exc_info:
            # Format the traceback now so it can be scrubbed as text.
            record.exc_text = self.scrub(self._format_exception(record.exc_info))
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        return True


# json.dumps(ensure_ascii=False) leaves these raw; they break lines for
# str.splitlines, JavaScript and some log shippers. As \uXXXX escapes the
# object stays the same JSON.
_JSON_LINE_BREAKERS = {code: f"\\u{code:04x}" for code in (*range(0x80, 0xA0), 0x2028, 0x2029)}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg (+ exc when present)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        line = json.dumps(entry, ensure_ascii=False)
        return line if line.isascii() else line.translate(_JSON_LINE_BREAKERS)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT`` lines with every control character of the message escaped.

    An exception's traceback keeps its own line breaks; within it, what
    came from an exception message (``Type: message``, notes) is escaped
    whole, line breaks included, and every other line is escaped line by line.
    """

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = escape_controls(self.formatMessage(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + _escape_lines(record.exc_text)
        if record.stack_info:
            line += "\n" + _escape_lines(self.formatStack(record.stack_info))
        return line

    def formatException(self, ei: Any) -> str:
        if ei[0] is None or ei[1] is None:  # exc_info=True outside an except block
            return _escape_lines(super().formatException(ei))
        chunks = traceback.TracebackException(ei[0], ei[1], ei[2], compact=True).format()
        return "".join(_escape_chunk(chunk) for chunk in chunks).rstrip("\n")


def _escape_lines(text: str) -> str:
    return "\n".join(escape_controls(line) for line in text.split("\n"))


def _escape_chunk(chunk: str) -> str:
    """One piece of TracebackException.format(), escaped.

    Structure (the header, ``  File`` frames, the chaining sentences) starts
    with a space, a newline or a fixed word; an exception's own text starts
    with its type name and may hold anything, so its line breaks are escaped too.
    """
    body = chunk[:-1] if chunk.endswith("\n") else chunk
    if chunk.startswith((" ", "\n", "Traceback ", "During handling", "The above exception")):
        return _escape_lines(body) + "\n"
    return escape_controls(body) + "\n"


def setup_logging(
    level: str = "info", fmt: str = "text", stream: TextIO | None = None
) -> SecretScrubber:
    """Configures the ``nexomon`` logger tree; returns the scrubber to register keys with.

    Also routes uncaught exceptions (``sys.excepthook``, ``threading.excepthook``)
    to the ``nexomon`` logger at error level. Calling it again replaces the
    handler and keeps one pair of hooks.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    handler.setFormatter(formatter)
    scrubber = SecretScrubber(formatter.formatException)
    handler.addFilter(scrubber)
    root = logging.getLogger("nexomon")
    _own(root, handler, level.upper())
    # Libraries we run log too; their lines go through the same formatter and
    # scrubber. APScheduler's warnings repeat what the scheduler already logs
    # (missed runs), so only its errors are shown.
    _own(logging.getLogger("apscheduler"), handler, "ERROR")
    _own(logging.getLogger("uvicorn.error"), handler, "WARNING")
    sys.excepthook = _sys_excepthook
    threading.excepthook = _thread_excepthook
    return scrubber


def _own(logger: logging.Logger, handler: logging.Handler, level: str) -> None:
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def _sys_excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    """An uncaught exception of the main thread, logged; Ctrl-C keeps Python's own hook."""
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    _log_uncaught(threading.current_thread().name, (exc_type, exc, tb), sys.__excepthook__)


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    """An uncaught exception of a thread, logged with the thread's name."""
    if args.exc_type is SystemExit:  # what threading's own hook ignores too
        return
    name = args.thread.name if args.thread is not None else "unknown"
    exc = args.exc_value if args.exc_value is not None else args.exc_type()

    def fallback(*_: object) -> None:
        threading.__excepthook__(args)

    _log_uncaught(name, (args.exc_type, exc, args.exc_traceback), fallback)


def _log_uncaught(thread: str, exc_info: ExcInfo, fallback: Callable[..., None]) -> None:
    logger = logging.getLogger("nexomon")
    try:
        logger.error("uncaught exception in thread %s", thread, exc_info=exc_info)
    except Exception:
        # Logging itself failed (a closed stream): Python's own hook still
        # reports the original exception rather than nothing.
        fallback(*exc_info)
