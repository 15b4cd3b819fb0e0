"""One spool, one instance (issue 17): the default spool is per location under the
data directory, and a held spool folder refuses a second process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.config.model import load
from monitor.config.paths import spool_leaf
from monitor.errors import ConfigError
from monitor.simulator.server import RunningSimulator
from monitor.store.spool import LOCK_NAME, hold_spool, spool_holder
from tests.store.pgcluster import PgCluster

PG_URL = "postgresql+psycopg://nexomon@db.invalid/nexomon"
TARGET = '[[targets]]\nname = "a"\nbase_url = "http://127.0.0.1:9/v1"\napi_key_env = "K"\n'

# A second process that holds the spool until it reads a line on stdin.
HOLDER = """
import sys
from pathlib import Path
from monitor.store.spool import hold_spool
lock = hold_spool(Path(sys.argv[1]), "holder.toml")
print("held", flush=True)
sys.stdin.readline()
"""


def write_config(folder: Path, location: str, extra: str = "") -> Path:
    path = folder / f"{spool_leaf(location)}.toml"
    path.write_text(f'[monitor]\nlocation = "{location}"\n{extra}\n{TARGET}', encoding="utf-8")
    return path


def start_holder(directory: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(directory)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


def test_each_location_gets_its_own_spool_under_the_data_dir(tmp_path: Path) -> None:
    env = {"NEXOMON_DATABASE_URL": PG_URL, "NEXOMON_DATA_DIR": str(tmp_path / "data")}
    spools = {
        location: load(write_config(tmp_path, location), env=env).monitor.spool_dir
        for location in ("eu-west", "us-east", "eu/west", "eu_west")
    }
    base = tmp_path / "data" / "nexomon-spool"
    assert spools["eu-west"] == str(base / "eu-west")
    assert spools["us-east"] == str(base / "us-east")
    # Unsafe characters are replaced, and a hash keeps eu/west apart from eu_west.
    assert Path(str(spools["eu/west"])).parent == base
    assert Path(str(spools["eu/west"])).name.startswith("eu_west-")
    assert len(set(spools.values())) == 4


def test_without_a_data_dir_the_spool_is_beside_the_config_not_the_cwd(tmp_path: Path) -> None:
    config = load(write_config(tmp_path, "eu-west"), env={"NEXOMON_DATABASE_URL": PG_URL})
    assert config.monitor.spool_dir == str(tmp_path / "nexomon-spool" / "eu-west")


def test_sqlite_keeps_its_spool_beside_the_database_in_the_data_dir(tmp_path: Path) -> None:
    env = {"NEXOMON_DATA_DIR": str(tmp_path / "data")}
    config = load(write_config(tmp_path, "eu-west"), env=env)
    assert config.monitor.database_url == f"sqlite:///{tmp_path / 'data' / 'nexomon.db'}"
    assert config.monitor.spool_dir is None  # the store puts it at <db>.spool


def test_a_relative_spool_dir_resolves_against_the_data_dir(tmp_path: Path) -> None:
    path = write_config(tmp_path, "x", 'spool_dir = "spool"\ndata_dir = "var"')
    assert load(path, env={}).monitor.spool_dir == str(tmp_path / "var" / "spool")
    # $NEXOMON_DATA_DIR wins over the key.
    env = {"NEXOMON_DATA_DIR": str(tmp_path / "env")}
    assert load(path, env=env).monitor.spool_dir == str(tmp_path / "env" / "spool")


def test_a_held_spool_refuses_a_second_process_naming_the_holder(tmp_path: Path) -> None:
    spool_dir = tmp_path / "nexomon-spool" / "eu-west"
    holder = start_holder(spool_dir)
    try:
        with pytest.raises(ConfigError) as refused:
            hold_spool(spool_dir, "second.toml")
        assert str(refused.value) == (
            f"second.toml: monitor.spool_dir: {spool_dir} is in use by another nexomon "
            f"(pid {holder.pid}); give each instance its own location or spool_dir"
        )
        assert spool_holder(spool_dir) == holder.pid
    finally:
        holder.kill()
        holder.wait()
    # kill -9 frees the lock: the next instance takes the folder over.
    lock = hold_spool(spool_dir, "second.toml")
    assert spool_holder(spool_dir) == os.getpid()
    assert (spool_dir / LOCK_NAME).stat().st_mode & 0o777 == 0o600
    lock.release()


def test_one_process_cannot_hold_a_spool_twice_and_release_frees_it(tmp_path: Path) -> None:
    first = hold_spool(tmp_path / "spool", "a.toml")
    with pytest.raises(ConfigError, match=r"monitor\.spool_dir: .* is in use"):
        hold_spool(tmp_path / "spool", "a.toml")
    first.release()
    first.release()  # idempotent
    assert not first.held
    hold_spool(tmp_path / "spool", "a.toml").release()


def test_a_spool_dir_that_cannot_be_created_names_the_key(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder\n", encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        hold_spool(blocker / "spool", "c.toml")
    assert str(refused.value) == (
        f"c.toml: monitor.spool_dir: cannot create {blocker / 'spool'} (not a directory)"
    )


def test_a_holder_stopped_by_sigterm_frees_the_spool(tmp_path: Path) -> None:
    holder = start_holder(tmp_path / "spool")
    holder.send_signal(signal.SIGTERM)
    holder.wait()
    deadline = time.monotonic() + 10
    while True:  # the kernel drops the flock with the last descriptor
        try:
            hold_spool(tmp_path / "spool", "d.toml").release()
            break
        except ConfigError:
            assert time.monotonic() < deadline
            time.sleep(0.05)


# -- real daemons on one PostgreSQL ----------------------------------------------------


def _daemon_config(folder: Path, base_url: str, url: str, location: str, **monitor: str) -> Path:
    from harness import write_config

    return write_config(
        folder, base_url, database_url=url, monitor={"location": location, **monitor}
    )


def test_two_locations_on_one_postgresql_spool_apart(
    pg_cluster: PgCluster, simulator: RunningSimulator, tmp_path: Path
) -> None:
    from harness import running_daemon

    url = pg_cluster.url(pg_cluster.create_database())
    data = tmp_path / "data"
    env = {"NEXOMON_DATA_DIR": str(data)}
    eu = _daemon_config(tmp_path / "eu", simulator.base_url, url, "eu-west")
    us = _daemon_config(tmp_path / "us", simulator.base_url, url, "us/east")
    with running_daemon(eu, env) as first, running_daemon(us, env) as second:
        folders = sorted(p.name for p in (data / "nexomon-spool").iterdir())
        assert first.stop() == 0 and second.stop() == 0
    assert folders == ["eu-west", spool_leaf("us/east")]
    assert not (tmp_path / "eu" / "nexomon-spool").exists()  # not beside the config


def test_a_second_instance_on_the_same_spool_exits_2_naming_spool_dir(
    pg_cluster: PgCluster, simulator: RunningSimulator, tmp_path: Path
) -> None:
    from harness import running_daemon

    url = pg_cluster.url(pg_cluster.create_database())
    shared = str(tmp_path / "shared-spool")
    first_config = _daemon_config(tmp_path / "a", simulator.base_url, url, "a", spool_dir=shared)
    second_config = _daemon_config(tmp_path / "b", simulator.base_url, url, "b", spool_dir=shared)
    with running_daemon(first_config) as first:
        assert first.proc is not None
        second = subprocess.run(
            [sys.executable, "-m", "monitor.cli.main", "run", "-c", str(second_config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert first.stop() == 0
    assert second.returncode == 2, second
    assert second.stderr.strip().splitlines() == [
        f"nexomon: {second_config}: monitor.spool_dir: {shared} is in use by another nexomon "
        f"(pid {first.proc.pid}); give each instance its own location or spool_dir"
    ]
