"""Prometheus metrics, one registry per app (no process-global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "guardproxy_requests",
            "Requests handled, by endpoint, model and outcome.",
            ["endpoint", "model", "outcome"],
            registry=self.registry,
        )
        self.blocks = Counter(
            "guardproxy_blocks",
            "Blocks, by stage, step and detector (a step that did not run and failed closed counts too).",
            ["stage", "step", "detector"],
            registry=self.registry,
        )
        self.step_latency = Histogram(
            "guardproxy_step_latency_seconds",
            "Time a policy step took for one text.",
            ["stage", "step", "detector"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_latency = Histogram(
            "guardproxy_upstream_latency_seconds",
            "Backend time to the full answer (non-stream) or the first chunk (stream).",
            ["backend", "endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.request_latency = Histogram(
            "guardproxy_request_latency_seconds",
            "Whole request time inside the proxy.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.policy_reloads = Counter(
            "guardproxy_policy_reloads", "Policy reload attempts by result.", ["result"], registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
