"""The packaged migrations' head, and the revisions a database is at, without SQLAlchemy.

``head_revision()`` reads the migration files' ``revision``/``down_revision``
lines (no Alembic import: alembic, mako and pygments are ~11 MB of RSS a
restarted daemon would keep for life). ``stored_revisions(reader)`` reads
``alembic_version`` through a ``sql_reader.Reader``, so ``nexomon report``
checks the schema without importing SQLAlchemy (``monitor.store.reading``).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from monitor.store.sql_reader import Reader

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

_REVISION = re.compile(r"^revision(?::[^=]*)?\s*=\s*[\"']([^\"']+)[\"']", re.MULTILINE)
_DOWN = re.compile(r"^down_revision(?::[^=]*)?\s*=\s*(?:None|[\"']([^\"']+)[\"'])", re.MULTILINE)


@cache
def head_revision() -> str | None:
    """The one head of the packaged migrations, from their text; None when unsure."""
    revisions, parents = set(), set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        revision, down = _REVISION.search(source), _DOWN.search(source)
        if revision is None or down is None:
            return None
        revisions.add(revision.group(1))
        if down.group(1):
            parents.add(down.group(1))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def stored_revisions(reader: Reader) -> list[str] | None:
    """The database's ``alembic_version`` rows; None when it has no such table
    (PostgreSQL: none on the search path, where Alembic makes it)."""
    if reader.sqlite:
        exists = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
    else:
        exists = "SELECT 1 WHERE to_regclass('alembic_version') IS NOT NULL"
    if not reader.rows(exists):
        return None
    return [row[0] for row in reader.rows("SELECT version_num FROM alembic_version")]
