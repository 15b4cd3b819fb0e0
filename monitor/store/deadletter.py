"""The dead-letter file: rows the database refused on their own, kept for a person.

``nexomon-deadletter.jsonl`` beside the spool, mode 0600 (rows may carry
request ids and error text), one line per refused row in the spool's form
(``{"result_id": ..., "result": {...}}``, see ``spool.encode_item``) plus
``"reason"``: the first line of the error. Lines are pure ASCII, so a row
whose text the database cannot take (a lone surrogate, a NUL) is still
written, byte for byte recoverable; ``spool.read_items`` reads the file
back. Each append is fsynced: a refused row exists nowhere else.

Nothing replays this file: a row refused once is refused again. A crash
between the append and the removal of the row's journal segment can list a
row twice (same ``result_id``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from monitor.store.spool import Item, append_synced, result_to_dict

# In the "nexomon" tree: formatted, scrubbed of secrets, JSON when asked.
log = logging.getLogger("nexomon.store.writer")

DEADLETTER_NAME = "nexomon-deadletter.jsonl"


class DeadLetter:
    """The dead-letter file in ``directory`` (created on the first refused row)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / DEADLETTER_NAME

    def append(self, item: Item, reason: str) -> bool:
        """Keep one refused row; False (logged) when it could not be written."""
        result_id, result = item
        try:
            line = json.dumps(
                {"result_id": result_id, "result": result_to_dict(result), "reason": reason},
                separators=(",", ":"),
            )
            append_synced(self.directory, self.path, line.encode("ascii") + b"\n")
        except Exception as exc:  # OSError, or a value JSON cannot hold: never raise
            log.error(
                "cannot write result %s to the dead-letter file %s, the row is lost: %s",
                result_id,
                self.path,
                exc,
            )
            return False
        return True
