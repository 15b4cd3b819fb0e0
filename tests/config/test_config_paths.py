"""Where data goes (``monitor/config/paths.py``): ``$NEXOMON_DATA_DIR``, then
``[monitor] data_dir``, then the config file's folder; keys stay config-relative."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from monitor.config.model import load
from monitor.config.paths import default_spool_dir, spool_leaf, sqlite_file_url
from monitor.errors import ConfigError

TARGET = '[[targets]]\nname = "a"\nbase_url = "http://127.0.0.1:9/v1"\napi_key_file = "k.key"\n'


def write(folder: Path, monitor: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "nexomon.toml"
    path.write_text(f"[monitor]\n{monitor}\n{TARGET}", encoding="utf-8")
    return path


def test_without_a_data_dir_everything_stays_beside_the_config(tmp_path: Path) -> None:
    config = load(write(tmp_path / "etc"), env={})
    assert config.monitor.data_dir is None
    assert config.monitor.database_url == f"sqlite:///{tmp_path / 'etc' / 'nexomon.db'}"
    assert config.targets[0].api_key_file == str(tmp_path / "etc" / "k.key")


def test_the_data_dir_key_is_relative_to_the_config_and_keys_stay_there(tmp_path: Path) -> None:
    config = load(write(tmp_path / "etc", 'data_dir = "../var"'), env={})
    data = tmp_path / "etc" / ".." / "var"
    assert config.monitor.data_dir == str(data)
    assert config.monitor.database_url == f"sqlite:///{data / 'nexomon.db'}"
    assert config.targets[0].api_key_file == str(tmp_path / "etc" / "k.key")


def test_the_environment_wins_and_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path / "etc", 'data_dir = "/elsewhere"')
    config = load(path, env={"NEXOMON_DATA_DIR": "state"})
    assert config.monitor.data_dir == str(tmp_path / "state")
    assert config.monitor.database_url == f"sqlite:///{tmp_path / 'state' / 'nexomon.db'}"


def test_absolute_database_paths_and_the_url_override_are_left_alone(tmp_path: Path) -> None:
    path = write(tmp_path, f'database_url = "sqlite:///{tmp_path / "abs.db"}"')
    env = {"NEXOMON_DATA_DIR": str(tmp_path / "data")}
    assert load(path, env=env).monitor.database_url == f"sqlite:///{tmp_path / 'abs.db'}"
    url = "postgresql+psycopg://u@h/d"
    assert load(path, env={**env, "NEXOMON_DATABASE_URL": url}).monitor.database_url == url


def test_an_empty_data_dir_key_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, 'data_dir = ""')
    with pytest.raises(ConfigError, match=r"monitor\.data_dir: "):
        load(path, env={})


@pytest.mark.parametrize(
    ("location", "leaf"),
    [("eu-west-1", "eu-west-1"), ("a.b_c", "a.b_c"), ("..", None), ("eu west", None)],
)
def test_a_location_becomes_one_safe_folder_name(location: str, leaf: str | None) -> None:
    made = spool_leaf(location)
    assert made == leaf if leaf is not None else made != location
    assert os.sep not in made and made not in (".", "..") and not made.startswith(".")


def test_only_a_sqlite_file_keeps_its_spool_beside_it() -> None:
    assert sqlite_file_url("sqlite:////var/lib/nexomon/nexomon.db")
    assert sqlite_file_url("sqlite+pysqlite:///x.db")
    assert not sqlite_file_url("sqlite:///:memory:")
    assert not sqlite_file_url("sqlite://")
    assert not sqlite_file_url("postgresql+psycopg://u@h/d")
    home = Path("/data")
    assert default_spool_dir("sqlite:////data/n.db", home, "x") is None
    assert default_spool_dir("sqlite:///:memory:", home, "x") == "/data/nexomon-spool/x"
