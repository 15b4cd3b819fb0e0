"""A SQLite database ``nexomon run`` may not write is a one-line error, not silent spooling.

Issue 16, point 6: SQLite opens a file its user may not write read-only
without complaint, and every insert then fails into the spool. ``nexomon run``
must refuse at start, naming ``monitor.database_url``, exit 2, before any
probe. Root writes whatever the modes say, so the daemon runs as an
unprivileged uid through ``setpriv``; it keeps CAP_DAC_READ_SEARCH only so it
can read the interpreter under /root (reading, never writing, bypasses modes).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import REPO, nexomon, target, unique_secret, write_config

from monitor.simulator.scenario import Scenario
from monitor.simulator.server import RunningSimulator

UID = 10001
KEY = unique_secret()

# CI runs as root with util-linux: there the test runs, and fails if it cannot.
pytestmark = pytest.mark.skipif(
    (os.geteuid() != 0 or shutil.which("setpriv") is None) and not os.environ.get("CI"),
    reason="needs root and setpriv to run the daemon as an unprivileged user",
)


def as_user(*args: str) -> subprocess.CompletedProcess[str]:
    """``nexomon ARGS`` as uid 10001 (not root), reading files but writing as that user."""
    command = [
        "setpriv",
        f"--reuid={UID}",
        f"--regid={UID}",
        "--clear-groups",
        "--inh-caps=+dac_read_search",
        "--ambient-caps=+dac_read_search",
        sys.executable,
        "-m",
        "monitor.cli.main",
        *args,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXOMON_")}
    env["NEXOMON_TEST_KEY"] = KEY
    return subprocess.run(
        command, env=env, cwd=REPO, capture_output=True, text=True, timeout=90, check=False
    )


def requests(sim: RunningSimulator) -> int:
    """Every request the simulator has answered (listings and chats)."""
    stats = sim.simulator.stats
    return stats.models_requests + stats.chat_requests()


@pytest.fixture
def sim() -> Iterator[RunningSimulator]:
    scenario = {"name": "readonly-db", "api_keys": [KEY], "models": {"m-one": {}}}
    with RunningSimulator(Scenario.from_dict(scenario)) as running:
        yield running


@pytest.fixture
def root_owned_dir() -> Iterator[Path]:
    """A root-owned folder others may read (tmp_path is 0700 under /tmp/pytest-of-root)."""
    directory = Path(tempfile.mkdtemp(prefix="nexomon-ro-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def make_database(directory: Path, sim: RunningSimulator) -> tuple[Path, Path]:
    """A migrated database and its config, both created by root."""
    db_file = directory / "nexomon.db"
    config = write_config(
        directory,
        [target("sim", sim.base_url, api_key_env="NEXOMON_TEST_KEY")],
        monitor={"database_url": f"sqlite:///{db_file}", "listen": "127.0.0.1:0"},
    )
    config.chmod(0o644)
    upgraded = nexomon("db", "upgrade", "-c", str(config))
    assert upgraded.rc == 0, upgraded
    return db_file, config


def test_a_read_only_database_file_is_one_line_naming_the_key(
    root_owned_dir: Path, sim: RunningSimulator
) -> None:
    db_file, config = make_database(root_owned_dir, sim)
    db_file.chmod(0o444)
    # The folder is writable, so only the file's mode stands in the way.
    os.chown(root_owned_dir, UID, UID)

    ran = as_user("run", "-c", str(config))

    assert ran.returncode == 2, ran
    lines = [line for line in ran.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, ran.stderr
    assert lines[0] == (
        f"nexomon: {config}: monitor.database_url: {db_file} is read-only for this user"
        f" (uid {UID}); nexomon run needs to write the database and its journal beside it"
    )
    assert requests(sim) == 0  # refused before any probe


def test_a_database_in_a_folder_the_user_cannot_write_is_refused_too(
    root_owned_dir: Path, sim: RunningSimulator
) -> None:
    db_file, config = make_database(root_owned_dir, sim)
    db_file.chmod(0o666)  # the file is writable; its root-owned folder is not

    ran = as_user("run", "-c", str(config))

    assert ran.returncode == 2, ran
    assert f"monitor.database_url: {root_owned_dir} is read-only for this user" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert requests(sim) == 0


def test_a_writable_database_still_runs_as_that_user(
    root_owned_dir: Path, sim: RunningSimulator
) -> None:
    """The check refuses only what cannot work: the same layout, made writable, probes."""
    db_file, config = make_database(root_owned_dir, sim)
    os.chown(root_owned_dir, UID, UID)
    os.chown(db_file, UID, UID)

    ran = as_user("probe", "-c", str(config))

    assert ran.returncode == 0, ran
    assert requests(sim) > 0
