"""The replica deployment files (docker-compose.yml, deploy/): no container engine runs here, so these checks
keep them consistent with what is tested (tests/test_replicas.py runs the same topology without containers)."""

from __future__ import annotations

from pathlib import Path

import yaml

from guardproxy.policies.loader import load_policy

ROOT = Path(__file__).resolve().parents[1]


def test_the_replica_policy_is_the_shipped_policy_plus_shared_stores() -> None:
    shipped = load_policy(ROOT / "policy.yaml", env={})
    replicas = load_policy(ROOT / "deploy" / "policy.replicas.yaml", env={})
    for section in ("backends", "models", "detectors", "input", "output", "profiles", "proxy", "learning"):
        assert getattr(replicas, section) == getattr(shipped, section), section
    assert replicas.audit.url == "postgresql://guardproxy@postgres/guardproxy"
    assert replicas.state.url == "redis://redis:6379/0" and replicas.state.on_error == "fail_closed"
    assert replicas.auth.mode == "keys" and replicas.auth.keys_path.startswith("/keys/")


def test_compose_runs_two_replicas_of_that_policy_behind_the_balancer() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"proxy-a", "proxy-b", "lb", "postgres", "redis"} <= set(services)
    for name in ("proxy-a", "proxy-b"):
        assert "/app/deploy/policy.replicas.yaml" in services[name]["command"]
        assert services[name]["build"]["args"]["EXTRAS"] == "postgres,redis"
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "server proxy-a:8080" in nginx and "server proxy-b:8080" in nginx and "proxy_buffering off" in nginx
    assert "COPY deploy ./deploy" in (ROOT / "Dockerfile").read_text()
