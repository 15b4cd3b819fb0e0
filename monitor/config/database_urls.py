"""The plain database URL forms, read without SQLAlchemy.

``sqlite:///PATH`` (no query) and ``postgresql[+psycopg]://`` or
``postgres://`` with at most one host and port and single-valued query
options: what a config names nearly always. For them the config check
(``rules._database_url``) and ``nexomon report``'s connection
(``monitor.store.dbapi_open``) skip SQLAlchemy, whose import is ~0.35 s of
a report (plus ~0.1 s for its PostgreSQL dialect); every other form goes
through SQLAlchemy's own parse, which knows them all. The answers here are
SQLAlchemy's for the same URL (tests/store/test_dbapi_open.py holds them to it).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

_SQLITE = re.compile(r"^sqlite:///(?P<path>[^?#]+)$")
_POSTGRES = re.compile(
    r"^(?:postgresql|postgres)(?:\+psycopg)?://"
    r"(?:(?P<user>[^:@/?#]*)(?::(?P<password>[^@/?#]*))?@)?"
    r"(?P<host>[^:@/?#\[\],]*)(?::(?P<port>\d+))?"
    r"(?:/(?P<database>[^?#]*))?(?:\?(?P<query>[^#]*))?$"
)


def sqlite_path(url: str) -> Path | None:
    """The file of a plain ``sqlite:///PATH`` URL (relative to the working
    directory unless absolute); None for any other form."""
    match = _SQLITE.match(url)
    path = unquote(match.group("path")) if match else ":memory:"
    return None if path == ":memory:" or path.startswith("file:") else Path(path)


def postgres_options(url: str) -> dict[str, Any] | None:
    """``psycopg.connect``'s keywords for a plain PostgreSQL URL, as SQLAlchemy's
    psycopg dialect builds them (user, password, host, port, dbname, then the
    query options); None for any other form, or an option given twice
    (SQLAlchemy makes a list of it)."""
    match = _POSTGRES.match(url)
    if match is None:
        return None
    options: dict[str, Any] = {}
    for name in ("user", "password", "host"):
        if match.group(name):
            options[name] = unquote(match.group(name))
    if match.group("port"):
        options["port"] = int(match.group("port"))
    if match.group("database"):
        options["dbname"] = unquote(match.group("database"))
    query = parse_qs(match.group("query") or "", keep_blank_values=True)
    for name, values in query.items():
        if len(values) != 1:
            return None
        options[name] = values[0]
    return options


_PLAIN_PATH = re.compile(r"[A-Za-z0-9_./~-]+")  # what SQLAlchemy renders unquoted


def plain_url(value: str, base_dir: Path | None) -> str | None:
    """The config's checked ``monitor.database_url`` for a plain form: ``value``,
    or a relative SQLite path made absolute under ``base_dir`` (what
    ``rules._database_url`` gives through SQLAlchemy); None for any other form,
    or a path SQLAlchemy would write with %-quoting."""
    if postgres_options(value) is not None:
        return value
    path = sqlite_path(value)
    if path is None or not _PLAIN_PATH.fullmatch(str(path)):
        return None
    if base_dir is None or path.is_absolute():
        return value
    full = str(base_dir / path)
    return "sqlite:///" + full if _PLAIN_PATH.fullmatch(full) else None
