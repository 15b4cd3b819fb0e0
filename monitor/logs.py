"""Logging set-up: one line per event, text or JSON, secrets scrubbed.

``setup_logging`` installs one stderr handler on the ``nexomon`` logger tree
and returns its ``SecretScrubber``; whoever reads an API key registers it
there, so that even a traceback that somehow carries the key prints
``[REDACTED]`` instead (defence in depth: the key is never put in a message
on purpose).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

REDACTED = "[REDACTED]"


class SecretScrubber(logging.Filter):
    """Replaces every registered secret in a record's final text."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()

    def add(self, secret: str) -> None:
        # Very short strings would redact ordinary words; keys are long.
        if len(secret) >= 6:
            self._secrets.add(secret)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = self.scrub(record.getMessage())
        record.msg, record.args = message, None
        if record.exc_info:
            # Format the traceback now so it can be scrubbed as text.
            record.exc_text = self.scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        return True


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
        return json.dumps(entry, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(
    level: str = "info", fmt: str = "text", stream: TextIO | None = None
) -> SecretScrubber:
    """Configures the ``nexomon`` logger tree; returns the scrubber to register keys with."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    scrubber = SecretScrubber()
    handler.addFilter(scrubber)
    root = logging.getLogger("nexomon")
    _own(root, handler, level.upper())
    # Libraries we run log too; their lines go through the same formatter and
    # scrubber. APScheduler's warnings repeat what the scheduler already logs
    # (missed runs), so only its errors are shown.
    _own(logging.getLogger("apscheduler"), handler, "ERROR")
    _own(logging.getLogger("uvicorn.error"), handler, "WARNING")
    return scrubber


def _own(logger: logging.Logger, handler: logging.Handler, level: str) -> None:
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
