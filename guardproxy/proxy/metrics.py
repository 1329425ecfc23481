"""Prometheus metrics, one registry per app (no process-global state)."""

from __future__ import annotations

from typing import Any, Self

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Label sets remembered per metric; past this (a label fed by client input) lookups go uncached.
_CACHED_LABEL_SETS = 4096


class _CachedLabels(MetricWrapperBase):
    """`labels(*values)` answered from a dict after the first call for a label set.

    prometheus_client's own lookup validates, converts every value with `str()` and takes a lock on
    each call: ~2 µs, about ten times per proxied request. Children are never replaced, only removed
    (`remove`, `clear`), which drop the cache too.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cached_children: dict[tuple[object, ...], Self] = {}

    def labels(self, *labelvalues: object, **labelkwargs: object) -> Self:
        if labelkwargs:
            return super().labels(*labelvalues, **labelkwargs)
        child = self._cached_children.get(labelvalues)
        if child is None:
            child = super().labels(*labelvalues)
            if len(self._cached_children) < _CACHED_LABEL_SETS:
                self._cached_children[labelvalues] = child
        return child

    def remove(self, *labelvalues: Any) -> None:
        self._cached_children.clear()
        super().remove(*labelvalues)

    def clear(self) -> None:
        self._cached_children.clear()
        super().clear()


class CachedCounter(_CachedLabels, Counter):
    pass


class CachedHistogram(_CachedLabels, Histogram):
    pass


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = CachedCounter(
            "guardproxy_requests",
            "Requests handled, by endpoint, model and outcome.",
            ["endpoint", "model", "outcome"],
            registry=self.registry,
        )
        self.blocks = CachedCounter(
            "guardproxy_blocks",
            "Blocks, by stage, step and detector (a step that did not run and failed closed counts too).",
            ["stage", "step", "detector"],
            registry=self.registry,
        )
        self.step_latency = CachedHistogram(
            "guardproxy_step_latency_seconds",
            "Time a policy step took for one text.",
            ["stage", "step", "detector"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.escalations = CachedCounter(
            "guardproxy_escalations",
            "Texts a cascade step escalated (`escalate:`), by stage, step, the escalation detector and its "
            "decision: fired, passed or error. Against the step's guardproxy_step_latency_seconds_count: the share "
            "escalated.",
            ["stage", "step", "detector", "decision"],
            registry=self.registry,
        )
        self.upstream_latency = CachedHistogram(
            "guardproxy_upstream_latency_seconds",
            "Backend time to the full answer (non-stream), the first chunk (stream) or the failure, per attempt.",
            ["backend", "endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.request_latency = CachedHistogram(
            "guardproxy_request_latency_seconds",
            "Whole request time inside the proxy.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.unscanned = CachedCounter(
            "guardproxy_unscanned_parts",
            "Parts of requests and answers no detector could read, by stage and kind.",
            ["stage", "kind"],
            registry=self.registry,
        )
        self.policy_reloads = Counter(
            "guardproxy_policy_reloads", "Policy reload attempts by result.", ["result"], registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
