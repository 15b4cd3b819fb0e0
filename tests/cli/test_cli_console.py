"""The ``nexomon`` console script (``monitor.cli.main.console``) as a real process.

After ``report`` it ends the process with ``os._exit`` once the output is
flushed: a report far bigger than a pipe's buffer still arrives whole, to its last
byte (which only the flush writes), and
the exit code is the command's (0, or 2 for a usage error). Other commands
exit the usual way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cli_helpers import REPO, nexomon, target, write_config

from monitor.store.batch import write_batch
from monitor.store.db import make_engine, upgrade
from tests.store.factory import chat

MODELS = 3000  # ~1.5 MB of JSON: many times a pipe's 64 KiB buffer
ENV = {"NEXOMON_TEST_KEY": "sk-console-test"}


def _config_with_rows(tmp_path: Path) -> Path:
    config = write_config(
        tmp_path, [target("gw", "http://127.0.0.1:9/v1", api_key_env="NEXOMON_TEST_KEY")]
    )
    url = f"sqlite:///{tmp_path / 'nexomon.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            write_batch(
                conn, [(f"{i:032x}", chat(i, model=f"model-{i:05d}")) for i in range(MODELS)]
            )
    finally:
        engine.dispose()
    return config


def test_a_large_report_arrives_whole_through_the_fast_exit(tmp_path: Path) -> None:
    config = _config_with_rows(tmp_path)
    args = [
        "report",
        "-c",
        str(config),
        "--since",
        "2025-11-01",
        "--by",
        "model",
        "--format",
        "json",
    ]
    # stdout block-buffered, as for any user's pipe (this machine's environment
    # sets PYTHONUNBUFFERED, which would hide a missing flush)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"} | ENV
    ran = subprocess.run(
        [sys.executable, "-m", "monitor.cli.main", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.endswith("]\n\n")  # print()'s newline sat in the buffer until the flush
    rows = json.loads(ran.stdout)
    assert len(rows) == MODELS and rows[-1]["model"] == f"model-{MODELS - 1:05d}"


def test_the_exit_code_is_the_commands(tmp_path: Path) -> None:
    config = _config_with_rows(tmp_path)
    ran = nexomon("report", "-c", str(config), "--since", "yesterday", env=ENV)
    assert ran.rc == 2 and "--since" in ran.err, ran
    ran = nexomon("config", "check", "-c", str(tmp_path / "missing.toml"), env=ENV)
    assert ran.rc == 2, ran  # not a report: the usual sys.exit
