"""docker-compose stack, Dockerfile and the stack's nexomon config, checked without docker.

Issue 16 point 2: keys through compose ``secrets:`` and ``api_key_file``,
Grafana's password from a secret and no anonymous access, every published
port on 127.0.0.1 unless ``NEXOMON_BIND`` says otherwise, the spool in the
data volume, no site-packages path, and an image whose data directory is a
``VOLUME`` and whose HEALTHCHECK is ``nexomon health``. The image's layout is
run for real, without Docker, in ``test_container_layout.py``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config.model import load

from .tools import DEPLOY, REPO, need_binary, run

COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
SERVICES = {"nexomon", "postgres", "prometheus", "alertmanager", "grafana"}


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _bind_mounts() -> list[tuple[str, Path, str]]:
    mounts = []
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                mounts.append((name, (DEPLOY / source).resolve(), target))
    return mounts


def test_compose_defines_the_whole_stack() -> None:
    assert set(_compose()["services"]) >= SERVICES


@pytest.mark.parametrize(("service", "source", "target"), _bind_mounts())
def test_compose_bind_mounts_exist_in_the_repository(
    service: str, source: Path, target: str
) -> None:
    assert source.exists(), f"{service}: {source} is missing (mounted at {target})"


def test_compose_builds_nexomon_from_the_repository_root() -> None:
    nexomon = _compose()["services"]["nexomon"]
    assert (DEPLOY / nexomon["build"]["context"] / nexomon["build"]["dockerfile"]).resolve() == (
        DOCKERFILE
    )
    assert nexomon["environment"]["NEXOMON_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@postgres:5432/" in nexomon["environment"]["NEXOMON_DATABASE_URL"]
    assert nexomon["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "./nexomon.toml:/etc/nexomon/nexomon.toml:ro" in nexomon["volumes"]


def test_compose_mounts_what_prometheus_yml_and_provisioning_expect() -> None:
    services = _compose()["services"]
    mount_targets = {target for _, _, target in _bind_mounts()}
    assert "/etc/prometheus/rules" in mount_targets
    assert "/etc/grafana/provisioning/dashboards" in mount_targets
    provider = yaml.safe_load((REPO / "dashboards/provisioning/dashboards/nexomon.yml").read_text())
    assert provider["providers"][0]["options"]["path"] in mount_targets
    scrape = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())["scrape_configs"][0]
    assert scrape["job_name"] == "nexomon"
    assert scrape["static_configs"][0]["targets"] == ["nexomon:9464"]
    assert [_default(port) for port in services["nexomon"]["ports"]] == ["127.0.0.1:9464:9464"]


def _default(text: str) -> str:
    """``text`` as compose interpolates it with no variable set: ``${VAR:-x}`` is x."""
    assert "$" not in re.sub(r"\$\{[A-Z_]+:-[^}]*\}", "", text), text
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", text)


def _published() -> list[tuple[str, str]]:
    return [
        (name, str(port))
        for name, service in _compose()["services"].items()
        for port in service.get("ports", [])
    ]


@pytest.mark.parametrize(("service", "port"), _published())
def test_every_published_port_is_bound_to_loopback_by_default(service: str, port: str) -> None:
    # "HOST:PUBLISHED:TARGET"; a bare "PUBLISHED:TARGET" would listen on every interface.
    host, published, _target = _default(port).rsplit(":", 2)
    assert host == "127.0.0.1", f"{service}: {port}"
    assert published.isdigit()


def test_no_key_or_password_is_a_plain_environment_variable_of_nexomon_or_grafana() -> None:
    services = _compose()["services"]
    for name in ("nexomon", "simulator", "grafana"):
        environment = services[name].get("environment", {})
        for key, value in environment.items():
            if re.search("KEY|PASSWORD|TOKEN|SECRET", key):
                assert key.endswith("__FILE") and value.startswith("/run/secrets/"), (name, key)
    assert "NEXOROUTER_API_KEY" not in COMPOSE.read_text(encoding="utf-8")


def test_keys_come_from_compose_secrets_through_api_key_file() -> None:
    compose = _compose()
    url = "postgresql+psycopg://nexomon:nexomon@postgres:5432/nexomon"
    config = load(DEPLOY / "nexomon.toml", env={"NEXOMON_DATABASE_URL": url})
    given = set(compose["services"]["nexomon"]["secrets"])
    for target in config.targets:
        assert target.api_key_env is None, target.name
        path = Path(str(target.api_key_file))
        assert path.parent == Path("/run/secrets"), target.name
        assert path.name in given and path.name in compose["secrets"], target.name
    for name, secret in compose["secrets"].items():
        if name in given:  # a secret the stack uses must exist in the repository
            assert (DEPLOY / secret["file"]).is_file(), name
    example = (DEPLOY / "nexomon.toml").read_text(encoding="utf-8")
    assert '# api_key_file = "/run/secrets/nexorouter_api_key"' in example


def test_grafana_has_a_secret_password_and_no_anonymous_access() -> None:
    compose = _compose()
    grafana = compose["services"]["grafana"]
    environment = grafana["environment"]
    assert environment["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    assert "GF_SECURITY_ADMIN_PASSWORD" not in environment
    assert environment["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "GF_AUTH_ANONYMOUS_ORG_ROLE" not in environment
    assert grafana["secrets"] == ["grafana_admin_password"]
    # Made by the user (README), never committed: deploy/secrets/.gitignore keeps it out.
    ignored = (DEPLOY / "secrets" / ".gitignore").read_text(encoding="utf-8").split()
    assert "*" in ignored and "!grafana_admin_password.txt" not in ignored


def test_the_simulator_uses_the_bundled_demo_scenario_by_name() -> None:
    command = _compose()["services"]["simulator"]["command"]
    assert "--scenario=demo" in command
    assert not any("site-packages" in str(part) for part in command)


def test_the_spool_lives_in_the_data_volume_with_postgresql() -> None:
    nexomon = _compose()["services"]["nexomon"]
    volume, target = nexomon["volumes"][1].split(":")[:2]
    assert target == "/var/lib/nexomon" and volume in _compose()["volumes"]
    assert "NEXOMON_DATA_DIR" not in nexomon.get("environment", {})  # the image's own
    env = {
        "NEXOMON_DATABASE_URL": nexomon["environment"]["NEXOMON_DATABASE_URL"],
        "NEXOMON_DATA_DIR": _dockerfile_env()["NEXOMON_DATA_DIR"],
    }
    config = load(DEPLOY / "nexomon.toml", env=env)
    assert config.monitor.spool_dir == "/var/lib/nexomon/nexomon-spool/compose"


def _dockerfile_env() -> dict[str, str]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    found: dict[str, str] = {}
    for line in re.findall(r"^ENV (.+)$", text, re.MULTILINE):
        found.update(dict(re.findall(r"(\w+)=(\S+)", line)))
    return found


def test_stack_config_is_valid_and_uses_the_compose_database() -> None:
    url = "postgresql+psycopg://nexomon:nexomon@postgres:5432/nexomon"
    config = load(DEPLOY / "nexomon.toml", env={"NEXOMON_DATABASE_URL": url})
    assert config.monitor.listen == "0.0.0.0:9464"
    assert config.monitor.database_url.startswith("postgresql+psycopg://")
    assert [target.name for target in config.targets] == ["simulator"]
    assert config.budget.daily_usd is not None


def test_dockerfile_is_hadolint_clean() -> None:
    hadolint = need_binary("hadolint")
    result = run([hadolint, "--no-color", str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "pattern",
    [
        r"^FROM python:3\.11-slim AS builder$",
        r"^FROM python:3\.11-slim$",
        r"^USER 10001:10001$",
        r"^EXPOSE 9464$",
        r'^HEALTHCHECK .*CMD \["nexomon", "health"\]$',
        r'^VOLUME \["/var/lib/nexomon"\]$',
        r"/wheels/nexomon-\*\.whl",
        r"install -d -o 10001 -g 10001 -m 0700 /var/lib/nexomon",
        r"install -d -o root -g root -m 0755 /etc/nexomon",
        r'^ENTRYPOINT \["nexomon"\]$',
        r'^CMD \["run", "-c", "/etc/nexomon/nexomon\.toml"\]$',
    ],
)
def test_dockerfile_is_multi_stage_non_root_with_healthcheck(pattern: str) -> None:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", "")
    assert re.search(pattern, text, re.MULTILINE), pattern


def test_dockerfile_points_nexomon_at_its_config_and_data_dir() -> None:
    env = _dockerfile_env()
    assert env["NEXOMON_CONFIG"] == "/etc/nexomon/nexomon.toml"
    assert env["NEXOMON_DATA_DIR"] == "/var/lib/nexomon"


def test_dockerignore_keeps_what_the_dockerfile_copies() -> None:
    rules = (REPO / ".dockerignore").read_text().split()
    for copied in re.findall(r"^COPY (?!--)(.+) \S+$", DOCKERFILE.read_text(), re.MULTILINE):
        for path in copied.split():
            assert f"!{path.rstrip('/')}" in rules, path
