"""The small exception tree.

    NexomonError            anything nexomon raises on purpose; the CLI prints
    │                       str(exc) as one line and exits with exc.exit_code
    ├── ConfigError         bad config file, key or value (exit 2)
    ├── UsageError          bad command-line arguments (exit 2)
    └── StoreError          the database cannot be opened or upgraded (exit 1)

A failed probe is never an exception: it is a ProbeResult with an outcome.
"""

from __future__ import annotations


class NexomonError(Exception):
    """Base class; ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class ConfigError(NexomonError):
    """A config problem, worded ``FILE: key.path: rule``."""

    exit_code = 2


class UsageError(NexomonError):
    """Bad command-line usage."""

    exit_code = 2


class StoreError(NexomonError):
    """The database cannot be reached, opened or migrated."""

    exit_code = 1
