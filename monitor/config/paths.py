"""Where nexomon finds its config file and keeps its data.

Contract:

- ``resolve_path(cli_path)``: the config file is ``-c PATH``, else
  ``$NEXOMON_CONFIG``, else ``./nexomon.toml``.
- The data directory, first that is set: ``$NEXOMON_DATA_DIR`` (relative to
  the working directory), ``[monitor] data_dir`` (relative to the config
  file's directory), else none: data then lives beside the config file, as it
  always has. The image sets ``NEXOMON_DATA_DIR=/var/lib/nexomon`` because its
  config folder ``/etc/nexomon`` is read-only.
- Data paths (a relative SQLite database, a relative ``spool_dir``, the
  default spool) resolve against the data directory, else the config file's
  directory. Config paths (``api_key_file``) always resolve against the config
  file's directory: keys are configuration, not data.
- ``default_spool_dir``: with no ``spool_dir``, a SQLite database keeps its
  spool beside the file (``<db>.spool``, decided by the store); any other
  database (PostgreSQL, shared by several instances) gets
  ``<data dir>/nexomon-spool/<location>/``, so two instances of different
  locations never share a spool file. ``spool_leaf`` makes the location safe
  as one path component.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationInfo

from monitor.config.rules import _base_dir, _resolve_file

__all__ = [
    "DATA_DIR_ENV",
    "DEFAULT_PATH",
    "PATH_ENV",
    "SPOOL_FOLDER",
    "data_home",
    "data_path",
    "default_spool_dir",
    "resolve_data_dir",
    "resolve_path",
    "spool_leaf",
    "sqlite_file_url",
]

PATH_ENV = "NEXOMON_CONFIG"
DATA_DIR_ENV = "NEXOMON_DATA_DIR"
DEFAULT_PATH = "nexomon.toml"
SPOOL_FOLDER = "nexomon-spool"

_SAFE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_UNSAFE_CHAR = re.compile(r"[^A-Za-z0-9._-]")


def resolve_path(cli_path: str | None, env: Mapping[str, str] | None = None) -> Path:
    """``-c PATH`` if given, else ``$NEXOMON_CONFIG`` if set, else ``./nexomon.toml``."""
    if cli_path:
        return Path(cli_path)
    from_env = (os.environ if env is None else env).get(PATH_ENV)
    if from_env:
        return Path(from_env)
    return Path(DEFAULT_PATH)


def spool_leaf(location: str) -> str:
    """``location`` as one safe path component.

    A location made only of ``[A-Za-z0-9._-]`` (not starting with a dot) is
    used as it is; any other gets its unsafe characters replaced by ``_`` and
    8 hex of its SHA-256 appended, so ``eu/west`` and ``eu_west`` still get
    different folders.
    """
    if _SAFE.fullmatch(location):
        return location
    digest = hashlib.sha256(location.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{_UNSAFE_CHAR.sub('_', location).lstrip('.') or '_'}-{digest}"


def sqlite_file_url(url: str) -> bool:
    """Whether ``url`` names a SQLite database file (not ``:memory:``, not a URI)."""
    if not url.startswith("sqlite"):
        return False
    database = url.partition(":///")[2]
    return bool(database) and database != ":memory:" and not database.startswith("file:")


def resolve_data_dir(value: str | None, info: ValidationInfo) -> str | None:
    """``monitor.data_dir``'s value: ``$NEXOMON_DATA_DIR`` (the context's
    ``data_dir_override``) made absolute, else the key against the config's folder."""
    override = (info.context or {}).get("data_dir_override")
    if override:
        return str(Path(override).absolute())
    return _resolve_file(value, info)


def data_home(info: ValidationInfo) -> Path | None:
    """Where data paths resolve: the validated ``data_dir``, else the config's folder
    (None for a config validated without a file)."""
    data_dir = info.data.get("data_dir")
    return Path(data_dir) if data_dir else _base_dir(info)


def data_path(value: str, config_relative: str | None, data_home: Path | None) -> str | None:
    """A data path from the file: ``config_relative`` (``value`` with ``~`` expanded,
    else resolved against the config's folder) unless ``value`` is relative and
    there is a data directory, which it then resolves against."""
    if data_home is None or Path(value).is_absolute() or value.startswith("~"):
        return config_relative
    return str(data_home / value)


def default_spool_dir(
    database_url: str | None, data_home: Path | None, location: str | None
) -> str | None:
    """The spool folder when ``spool_dir`` is unset; None leaves it to the store
    (``<db>.spool`` beside a SQLite file), or when a part is missing (invalid, or
    a config built without a file)."""
    if database_url is None or data_home is None or location is None:
        return None
    if sqlite_file_url(database_url):
        return None
    return str(data_home / SPOOL_FOLDER / spool_leaf(location))
