"""TLS certificate expiry: ``nexomon run`` against the simulator over https.

A throwaway CA and a leaf that expires in 10 days (tests/tlsca.py, openssl
CLI); the daemon trusts the CA through SSL_CERT_FILE, as a deployment with
a private CA would. ``/metrics`` must carry the leaf's notAfter to the second
(openssl's reading of it) and the TLS version, ``/api/v1/status`` the days
left. Then TlsWatch's own rules: what it keeps, drops and always describes.
"""

from __future__ import annotations

import signal
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import running_daemon, write_config
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from tlsca import TlsSimulator, make_pki

from monitor.exporter.tls import EXPIRY, VERSION, TlsWatch
from monitor.http.tlsinfo import TlsInfo

WAIT_S = 60.0  # for the first /models probe of a daemon on a loaded 2-core machine


def _families(text: str) -> dict[str, list]:
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_daemon_exports_the_leafs_not_after_and_the_status_api_its_days_left(
    tmp_path: Path, simulator: Any
) -> None:
    """Then a reload points the target at plain http: its TLS series and row go."""
    pki = make_pki(tmp_path / "pki", leaf_days=10)
    with TlsSimulator(pki) as sim:
        config = write_config(
            tmp_path / "run",
            sim.base_url,
            target={"models": ["sim-fast"], "models_interval": "1s", "chat_interval": "1h"},
        )
        with running_daemon(config, env={"SSL_CERT_FILE": str(pki.ca)}) as daemon:
            deadline = time.monotonic() + WAIT_S
            while True:
                samples = _families(daemon.get("/metrics").text)
                if samples[EXPIRY] or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert samples[EXPIRY], daemon.log()[-3000:]
            (expiry,) = samples[EXPIRY]
            assert expiry.labels == {"location": "test", "target": "sim"}
            assert expiry.value == pki.not_after  # to the second
            (version,) = samples[VERSION]
            assert version.labels == {"location": "test", "target": "sim", "version": "TLSv1.3"}
            assert version.value == 1

            body = daemon.get("/api/v1/status").json()
            at = datetime.fromisoformat(body["generated_at"]).timestamp()
            assert body["tls"] == [
                {
                    "target": "sim",
                    "version": "TLSv1.3",
                    "cert_not_after": datetime.fromtimestamp(pki.not_after, UTC).isoformat(),
                    "cert_days_left": round((pki.not_after - at) / 86400, 2),
                }
            ]
            assert 9.0 < body["tls"][0]["cert_days_left"] <= 10.0

            listen = tomllib.loads(config.read_text())["monitor"]["listen"]
            write_config(
                tmp_path / "run",
                simulator.base_url,
                monitor={"listen": listen},
                target={"models": ["sim-fast"], "models_interval": "1s", "chat_interval": "1h"},
            )
            daemon.signal(signal.SIGHUP)
            deadline = time.monotonic() + WAIT_S
            while _families(daemon.get("/metrics").text)[EXPIRY]:
                assert time.monotonic() < deadline, daemon.log()[-3000:]
                time.sleep(0.2)
            assert _families(daemon.get("/metrics").text)[VERSION] == []
            assert daemon.get("/api/v1/status").json()["tls"] == []
            assert daemon.stop() == 0


def test_daemon_on_plain_http_describes_both_families_with_no_sample(
    tmp_path: Path, simulator: Any
) -> None:
    config = write_config(
        tmp_path, simulator.base_url, target={"models": ["sim-fast"], "models_interval": "1s"}
    )
    with running_daemon(config) as daemon:
        deadline = time.monotonic() + WAIT_S
        while not daemon.get("/api/v1/status").json()["last_results"]:
            assert time.monotonic() < deadline, daemon.log()[-3000:]
            time.sleep(0.2)
        samples = _families(daemon.get("/metrics").text)
        assert samples[EXPIRY] == [] and samples[VERSION] == []
        assert daemon.get("/api/v1/status").json()["tls"] == []
        assert daemon.stop() == 0


# --- TlsWatch on its own ------------------------------------------------------


def _scrape(watch: TlsWatch) -> dict[str, list]:
    registry = CollectorRegistry()
    registry.register(watch)
    return _families(generate_latest(registry).decode())


def test_watch_keeps_the_last_facts_and_none_changes_nothing() -> None:
    watch = TlsWatch("eu")
    watch.observe("a", TlsInfo(not_after=1_900_000_000.0, version="TLSv1.3"))
    watch.observe("a", None)  # a failed handshake: the certificate last served stays
    watch.observe("b", TlsInfo(not_after=None, version="TLSv1.2"))  # a leaf it could not read
    samples = _scrape(watch)
    assert [(s.labels, s.value) for s in samples[EXPIRY]] == [
        ({"location": "eu", "target": "a"}, 1_900_000_000.0)
    ]
    assert [s.labels["version"] for s in samples[VERSION]] == ["TLSv1.3", "TLSv1.2"]
    now = datetime.fromtimestamp(1_900_000_000 - 3 * 86400 - 43200, UTC)
    assert watch.rows(now) == [
        {
            "target": "a",
            "version": "TLSv1.3",
            "cert_not_after": "2030-03-17T17:46:40+00:00",
            "cert_days_left": 3.5,
        },
        {"target": "b", "version": "TLSv1.2", "cert_not_after": None, "cert_days_left": None},
    ]


def test_watch_shows_an_expired_leaf_as_negative_days() -> None:
    watch = TlsWatch("eu")
    watch.observe("a", TlsInfo(not_after=1_900_000_000.0, version=None))
    (row,) = watch.rows(datetime.fromtimestamp(1_900_000_000 + 86400, UTC))
    assert row["cert_days_left"] == -1.0
    assert _scrape(watch)[VERSION] == []


def test_watch_retain_drops_targets_gone_or_no_longer_https() -> None:
    watch = TlsWatch("eu")
    for target in ("a", "b", "c"):
        watch.observe(target, TlsInfo(not_after=1_900_000_000.0, version="TLSv1.3"))
    watch.retain(["b", "z"])
    assert [row["target"] for row in watch.rows(datetime.now(UTC))] == ["b"]
    assert [s.labels["target"] for s in _scrape(watch)[EXPIRY]] == ["b"]
