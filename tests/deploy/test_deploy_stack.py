"""docker-compose stack, Dockerfile and the stack's nexomon config, checked without docker."""

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
    assert "9464:9464" in services["nexomon"]["ports"]


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
        r"^HEALTHCHECK .*\n?.*http://127\.0\.0\.1:9464/healthz",
        r'^ENTRYPOINT \["nexomon"\]$',
        r'^CMD \["run", "-c", "/etc/nexomon/nexomon\.toml"\]$',
    ],
)
def test_dockerfile_is_multi_stage_non_root_with_healthcheck(pattern: str) -> None:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", "")
    assert re.search(pattern, text, re.MULTILINE), pattern


def test_dockerignore_keeps_what_the_dockerfile_copies() -> None:
    rules = (REPO / ".dockerignore").read_text().split()
    for copied in re.findall(r"^COPY (?!--)(.+) \S+$", DOCKERFILE.read_text(), re.MULTILINE):
        for path in copied.split():
            assert f"!{path.rstrip('/')}" in rules, path
