"""The image's layout, run for real without Docker (issue 16 point 2).

What the Dockerfile builds, reproduced step by step: a wheel built from the
files the Dockerfile copies, installed with its dependencies (and nothing
else) into a fresh venv; ``nexomon run`` as uid 10001 (``setpriv``, as
``USER 10001:10001``) with the stack's config (``deploy/nexomon.toml``,
``sqlite:///nexomon.db`` relative) read-only in a root-owned folder (as
``/etc/nexomon``), the key a file only 10001 reads (as a compose secret), and
``NEXOMON_DATA_DIR`` a folder 10001 owns (as the ``VOLUME``). It must probe
the simulator, store the rows and keep its spool under the data directory,
answer ``nexomon health`` (with ``-c``, and through ``$NEXOMON_CONFIG`` as
the HEALTHCHECK calls it) and stop on SIGTERM with exit 0. Without
``NEXOMON_DATA_DIR`` the same run is the one-line error the issue saw as a
traceback: ``monitor.database_url: cannot create ... (permission denied)``,
exit 2.

Runs as root (CI does); the venv's interpreter must be one uid 10001 can run
(pyenv under a 0700 ``/root`` is not: the system ``python3.X`` of the same
version is used then, with the dependencies copied from this environment).
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from testutil import free_port

from monitor.simulator.server import RunningSimulator

from .tools import DEPLOY, REPO, run

UID = 10001
SETPRIV = shutil.which("setpriv")
PY = f"python{sys.version_info.major}.{sys.version_info.minor}"

pytestmark = [
    # CI runs as root with util-linux: there the test runs, and fails if it cannot.
    pytest.mark.skipif(
        os.geteuid() != 0 and not os.environ.get("CI"), reason="needs root to run as uid 10001"
    ),
    pytest.mark.skipif(
        SETPRIV is None and not os.environ.get("CI"), reason="setpriv (util-linux) is not installed"
    ),
    pytest.mark.timeout(300),
]


def as_10001(argv: list[str]) -> list[str]:
    assert SETPRIV is not None
    return [SETPRIV, f"--reuid={UID}", f"--regid={UID}", "--clear-groups", *argv]


def runnable_interpreter() -> str:
    """A ``pythonX.Y`` of this version that uid 10001 can execute, else skip."""
    candidates = [os.path.realpath(getattr(sys, "_base_executable", sys.executable))]
    candidates += [p for p in (shutil.which(PY, path="/usr/local/bin:/usr/bin"),) if p]
    check = "import sys; print(sys.version_info[:2])"
    for candidate in candidates:
        ran = subprocess.run(
            as_10001([candidate, "-I", "-c", check]), capture_output=True, text=True, check=False
        )
        if ran.returncode == 0 and ran.stdout.strip() == str(sys.version_info[:2]):
            return candidate
    pytest.skip(f"no {PY} that uid {UID} can run (tried {', '.join(candidates)})")


def build_wheel(work: Path) -> Path:
    """The Dockerfile's builder stage: pyproject.toml, README.md, monitor/ -> a wheel."""
    src = work / "src"
    src.mkdir()
    shutil.copy2(REPO / "pyproject.toml", src)
    shutil.copy2(REPO / "README.md", src)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "monitor", src / "monitor", ignore=ignore)
    wheels = work / "wheels"
    # Build isolation as in the Dockerfile: pip fetches pyproject's build requirements.
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q"]
    built = run([*pip, "--wheel-dir", str(wheels), str(src)], timeout=240)
    assert built.returncode == 0, built.stdout + built.stderr
    found = sorted(wheels.glob("*.whl"))
    # The distribution is called nexomon (issue 16 point 10), as the Dockerfile installs it.
    assert [w.name.split("-")[0] for w in found] == ["nexomon"], found
    return found[0]


def dependency_closure(site: Path) -> list[metadata.Distribution]:
    """The distributions the installed ``nexomon`` requires, found in this environment."""
    root = next(metadata.distributions(name="nexomon", path=[str(site)]))
    found: dict[str, metadata.Distribution] = {}
    todo = [(r, ()) for r in root.requires or []]
    while todo:
        text, extras = todo.pop()
        req = Requirement(text)
        envs = [{"extra": e} for e in extras] or [{"extra": ""}]
        if req.marker is not None and not any(req.marker.evaluate(e) for e in envs):
            continue
        dist = metadata.distribution(req.name)
        key = f"{canonicalize_name(req.name)}[{','.join(sorted(req.extras))}]"
        if key in found:
            continue
        found[key] = dist
        todo += [(r, tuple(req.extras)) for r in dist.requires or []]
    return list({id(d): d for d in found.values()}.values())


def make_venv(work: Path) -> Path:
    """A venv of its own with the wheel and its dependencies: the image's site-packages."""
    venv = work / "venv"
    made = run([runnable_interpreter(), "-m", "venv", "--without-pip", str(venv)])
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
    installed = run([*install, "--no-deps", "--no-index", str(build_wheel(work))], timeout=240)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
                .stdout.strip())  # fmt: skip
    for dist in dependency_closure(site):
        for file in dist.files or []:
            if file.parts[0] == ".." or "__pycache__" in file.parts:
                continue  # console scripts of the dependencies; caches
            target = site / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(dist.locate_file(file), target)
    return venv


@pytest.fixture(scope="module")
def image() -> Iterator[Path]:
    """A 0755 work folder (pytest's tmp_path is 0700: uid 10001 could not enter it)."""
    old = os.umask(0o022)
    work = Path(tempfile.mkdtemp(prefix="nexomon-image-"))
    try:
        work.chmod(0o755)
        make_venv(work)
        yield work
    finally:
        os.umask(old)
        shutil.rmtree(work, ignore_errors=True)


def stack_config(folder: Path, base_url: str, key_file: Path, port: int) -> Path:
    """deploy/nexomon.toml pointed at the simulator, probing every 2 s, in a root-owned
    read-only folder (0755, file 0644): /etc/nexomon."""
    text = (DEPLOY / "nexomon.toml").read_text(encoding="utf-8")
    for old, new in (
        ('base_url = "http://simulator:8080/v1"', f'base_url = "{base_url}"'),
        ('"/run/secrets/simulator_api_key"', f'"{key_file}"'),
        ('listen = "0.0.0.0:9464"', f'listen = "0.0.0.0:{port}"'),
        ('timeout = "10s"', 'timeout = "2s"'),
        ('models_interval = "30s"', 'models_interval = "2s"'),
        ('chat_interval = "30s"', 'chat_interval = "2s"'),
    ):
        assert old in text, f"deploy/nexomon.toml changed shape: {old!r}"
        text = text.replace(old, new)
    assert 'database_url = "sqlite:///nexomon.db"' in text
    folder.mkdir(mode=0o755)
    config = folder / "nexomon.toml"
    config.write_text(text, encoding="utf-8")
    config.chmod(0o644)
    return config


def env_of(venv: Path, config: Path, data_dir: Path | None) -> dict[str, str]:
    """The image's environment: nothing inherited from the test process."""
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": "/nonexistent",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "NEXOMON_CONFIG": str(config),
    }
    if data_dir is not None:
        env["NEXOMON_DATA_DIR"] = str(data_dir)
    return env


def stored_rows(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
            return int(connection.execute("SELECT count(*) FROM probe_results").fetchone()[0])
    except sqlite3.Error:  # not migrated yet
        return 0


def test_the_image_layout_runs_probes_stores_and_answers_health(image: Path) -> None:
    venv = image / "venv"
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=image))
    run_dir.chmod(0o755)
    secrets = run_dir / "secrets"  # /run/secrets: the key readable by 10001 only
    secrets.mkdir(mode=0o755)
    key_file = secrets / "simulator_api_key"
    key_file.write_text("sk-sim-demo\n", encoding="utf-8")
    os.chown(key_file, UID, UID)
    key_file.chmod(0o600)
    data_dir = run_dir / "data"  # the VOLUME, owned by 10001 (0700 as in the Dockerfile)
    data_dir.mkdir(mode=0o700)
    os.chown(data_dir, UID, UID)
    nexomon = str(venv / "bin" / "nexomon")
    demo = Path(str(venv / "lib" / PY / "site-packages" / "monitor" / "simulator" / "demo.toml"))

    with RunningSimulator(scenario_path=demo) as sim:
        # Picked once the simulator listens: picked before, the simulator's own
        # ephemeral port could be the same one (seen once in CI: "in use").
        port = free_port()
        config = stack_config(run_dir / "etc", sim.base_url, key_file, port)
        before = sorted(p.name for p in config.parent.iterdir())

        # Without the data directory: the config folder is not writable, one line, exit 2.
        refused = subprocess.run(
            as_10001([nexomon, "run", "-c", str(config)]),
            env=env_of(venv, config, None),
            cwd="/",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert refused.returncode == 2, refused
        assert refused.stderr.strip().splitlines() == [
            f"nexomon: {config}: monitor.database_url: cannot create "
            f"{config.parent / 'nexomon.db'} (permission denied)"
        ], refused
        assert sim.simulator.stats.log() == []  # refused before any probe

        log = (run_dir / "daemon.log").open("wb")
        daemon = subprocess.Popen(
            as_10001([nexomon, "run", "-c", str(config)]),
            env=env_of(venv, config, data_dir),
            cwd="/",
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        try:
            db = data_dir / "nexomon.db"
            deadline = time.monotonic() + 60
            while stored_rows(db) < 3:
                assert daemon.poll() is None, (run_dir / "daemon.log").read_text()
                assert time.monotonic() < deadline, (run_dir / "daemon.log").read_text()
                time.sleep(0.2)
            ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            assert ready.status_code == 200, ready.text

            health_env = env_of(venv, config, data_dir)
            for argv in ([nexomon, "health", "-c", str(config)], [nexomon, "health"]):
                health = subprocess.run(
                    as_10001(argv),
                    env=health_env,
                    cwd="/",
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=False,
                )
                assert health.returncode == 0, health
                assert health.stdout == f"http://127.0.0.1:{port}/healthz: ok\n"

            # The data is 10001's, under the data directory; the config folder is untouched.
            assert db.stat().st_uid == UID
            spool = data_dir / "nexomon.db.spool"
            assert spool.is_dir() and spool.stat().st_uid == UID
            assert sorted(p.name for p in config.parent.iterdir()) == before
        finally:
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
            try:
                code = daemon.wait(60)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
                raise
        assert code == 0, (run_dir / "daemon.log").read_text()
        assert stored_rows(db) >= 3
        assert sim.simulator.stats.log() != []
