"""A compiled policy (backends, detectors, chains) and the holder that swaps it on reload.

Requests take a reference to the runtime that was current when they began and keep it to the
end, so a reload never changes the rules under an in-flight request; a retired runtime closes
its backends and detectors once its last request has finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from guardproxy.backends.base import Backend
from guardproxy.backends.configs import BackendConfig
from guardproxy.backends.registry import build_backend
from guardproxy.detectors.base import Detector, DetectorDeps, RequestInstrumenter
from guardproxy.detectors.registry import build_detector
from guardproxy.detectors.response_schema import ResponseSchemaCheck
from guardproxy.detectors.shared import SharedResources
from guardproxy.errors import ModelNotFound, ProfileNotFound
from guardproxy.pins.check import ToolPinCheck
from guardproxy.pins.store import open_pin_store
from guardproxy.policies.chain import Chain, CompiledStep, compile_builtin, compile_steps, compile_unscanned
from guardproxy.policies.conversation import WindowCache
from guardproxy.policies.schema import DEFAULT_PROFILE, ModelRoute, Policy

if TYPE_CHECKING:  # Pillow is imported only by a policy that reads images
    from guardproxy.images.reader import ImageReader

log = structlog.get_logger(__name__)

# `backends.<name>` of a policy -> a ready backend; `build_backend` (the `type:` registry) by default.
BackendFactory = Callable[[str, BackendConfig], Backend]


@dataclass(frozen=True, slots=True)
class Target:
    route: ModelRoute
    backend: Backend

    @property
    def upstream_model(self) -> str:
        return self.route.upstream_model or self.route.name


@dataclass(frozen=True, slots=True)
class Chains:
    """What one profile runs over a request: its input and output chains and the unscanned-content steps."""

    profile: str
    input: Chain
    output: Chain
    # Records (and, as the policy says, flags or blocks) parts of a request / an answer no detector can read.
    unscanned_input: CompiledStep
    unscanned_output: CompiledStep
    # Detectors of output steps that mark every chat request before anything reads it (the canary), each once.
    instrumenters: tuple[RequestInstrumenter, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "instrumenters", request_instrumenters(self.output))


@dataclass(slots=True)
class Runtime:
    policy: Policy
    backends: dict[str, Backend]
    detectors: dict[str, Detector]
    input: Chain
    output: Chain
    # Records (and, as the policy says, flags or blocks) parts of a request / an answer no detector can read.
    unscanned_input: CompiledStep
    unscanned_output: CompiledStep
    # Detectors of output steps that mark every chat request before anything reads it (the canary), each once.
    instrumenters: tuple[RequestInstrumenter, ...] = field(init=False)
    # Named profiles of `profiles:` (not `default`, which is the fields above), over the same detectors.
    profiles: dict[str, Chains] = field(default_factory=dict)
    # Reads the text of request images (`proxy.images.ocr`); None: images stay unscanned.
    images: ImageReader | None = None
    # Conversation-scoped steps' window results (policies/conversation.py): a reload starts afresh.
    windows: WindowCache = field(default_factory=WindowCache)
    # Checks chat answers against the request's `response_format` (`proxy.response_schema`); None: `allow`.
    response_schema: CompiledStep | None = None
    # Reports chat requests whose tools changed since first pinned (`tool_pinning`); None: `off`.
    tool_pins: CompiledStep | None = None
    default: Chains = field(init=False)
    users: int = 0
    retired: bool = False
    _closed: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        self.default = Chains(DEFAULT_PROFILE, self.input, self.output, self.unscanned_input, self.unscanned_output)
        self.instrumenters = self.default.instrumenters

    def chains(self, profile: str | None) -> Chains:
        """The chains of `profile` (None: the default). A name the policy lacks fails closed, never the default."""
        if profile is None or profile == DEFAULT_PROFILE:
            return self.default
        chains = self.profiles.get(profile)
        if chains is None:
            raise ProfileNotFound(
                f"This API key uses the policy profile '{profile}', which the proxy's policy does not define "
                f"(profiles: {', '.join(self.policy.profile_names)}). Ask the proxy's operator to fix the key "
                "or the policy."
            )
        return chains

    def targets(self, model: str) -> list[Target]:
        """The route for `model` followed by its fallbacks, in order."""
        route = self.policy.route(model)
        if route is None:
            known = ", ".join(m.name for m in self.policy.models)
            raise ModelNotFound(f"The model '{model}' does not exist on this proxy; available: {known}.", param="model")
        routes = [route, *(r for name in route.fallbacks if (r := self.policy.route(name)) is not None)]
        return [Target(r, self.backends[r.backend]) for r in routes]

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        closeables: list[tuple[str, Backend | Detector]] = [*self.backends.items(), *self.detectors.items()]
        if self.tool_pins is not None:
            closeables.append(("tool_pinning", self.tool_pins.detector))
        for name, closeable in closeables:
            try:
                await closeable.aclose()
            except Exception as exc:  # noqa: BLE001 - one failing close must not leak the others
                log.warning("runtime_close_failed", component=name, error=repr(exc))


def request_instrumenters(output: Chain) -> tuple[RequestInstrumenter, ...]:
    """The output chain's detectors that declare `RequestInstrumenter`, in step order, each once."""
    detectors = {id(s.detector): s.detector for s in output.text_steps}.values()
    return tuple(d for d in detectors if isinstance(d, RequestInstrumenter))


def build_chains(
    policy: Policy, backends: Mapping[str, Backend] | None = None
) -> tuple[dict[str, Detector], Chain, Chain]:
    """Construct every detector once and the input/output chains over them."""
    # Per runtime: a reload loads fresh models, the old ones close with the old runtime.
    deps = DetectorDeps(backends=backends or {}, shared=SharedResources())
    detectors = {name: build_detector(name, cfg, deps) for name, cfg in policy.detectors.items()}
    return (
        detectors,
        Chain.build("input", compile_steps("input", policy.input, detectors)),
        Chain.build("output", compile_steps("output", policy.output, detectors)),
    )


def build_backends(policy: Policy, backend_factory: BackendFactory = build_backend) -> dict[str, Backend]:
    return {name: backend_factory(name, cfg) for name, cfg in policy.backends.items()}


# Policy -> Runtime, at start-up and on every reload: `create_app(settings, runtime_builder=...)` takes one.
RuntimeBuilder = Callable[[Policy], Runtime]


def build_runtime(policy: Policy, *, backend_factory: BackendFactory = build_backend) -> Runtime:
    """Construct every backend and detector once. May be slow (models): call it off the loop.

    `backend_factory` is the seam for tests and benchmarks (an in-memory backend, another HTTP client);
    detectors that call a backend (LLM judges) get the same injected ones.
    """
    backends = build_backends(policy, backend_factory)
    detectors, input_chain, output_chain = build_chains(policy, backends)
    mode = policy.proxy.unscanned
    unscanned_input, unscanned_output = compile_unscanned("input", mode), compile_unscanned("output", mode)
    profiles = {
        name: Chains(
            name,
            Chain.build("input", compile_steps("input", p.input, detectors)),
            Chain.build("output", compile_steps("output", p.output, detectors)),
            unscanned_input,
            unscanned_output,
        )
        for name, p in policy.profiles.items()
    }
    images = None
    if policy.proxy.images.ocr:
        from guardproxy.images.reader import ImageReader

        images = ImageReader(policy.proxy)
    schema_mode = policy.proxy.response_schema
    response_schema = (
        None
        if schema_mode == "allow"
        else compile_builtin("output.response_schema", "output", ResponseSchemaCheck(), schema_mode)
    )
    pinning = policy.tool_pinning
    tool_pins = (
        None
        if pinning.mode == "off"
        else compile_builtin("input.tool_pinning", "input", ToolPinCheck(open_pin_store(pinning.path)), pinning.mode)
    )
    return Runtime(
        policy,
        backends,
        detectors,
        input_chain,
        output_chain,
        unscanned_input,
        unscanned_output,
        profiles,
        images,
        response_schema=response_schema,
        tool_pins=tool_pins,
    )


class RuntimeHolder:
    def __init__(self, runtime: Runtime) -> None:
        self._current = runtime
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def current(self) -> Runtime:
        return self._current

    def acquire(self) -> Runtime:
        rt = self._current
        rt.users += 1
        return rt

    def release(self, rt: Runtime) -> None:
        rt.users -= 1
        if rt.retired and rt.users == 0:
            self._close_later(rt)

    def swap(self, new: Runtime) -> None:
        old, self._current = self._current, new
        old.retired = True
        if old.users == 0:
            self._close_later(old)

    def _close_later(self, rt: Runtime) -> None:
        task = asyncio.get_running_loop().create_task(rt.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        await asyncio.gather(*self._closing)
        await self._current.aclose()
