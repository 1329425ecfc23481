"""The pydantic schema of policy.yaml. Steps are a discriminated union on `action`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from guardproxy.backends.configs import BackendConfig
from guardproxy.config_base import StrictModel
from guardproxy.core import TextRole
from guardproxy.detectors.configs import DetectorConfig, checks_texts, policy_backend_of


class ModelRoute(StrictModel):
    name: str = Field(description="The model name clients ask for.")
    backend: str = Field(description="A key of `backends:`.")
    upstream_model: str | None = Field(None, description="Name sent upstream; defaults to `name`.")
    fallbacks: list[str] = Field(
        default_factory=list, description="Other model names (from `models:`) tried in order when this one is down."
    )


class Escalation(StrictModel):
    """A cascade: the texts a step's own (fast) detector is unsure of go to a slower, better detector, which decides.

    The step's detector runs first; when its score is in `band` (low <= score < high) the `detector` named here
    runs on the same text and its score against `threshold` decides whether the step fires; outside the band the
    step's own detector and threshold decide alone."""

    detector: str = Field(
        description="A key of `detectors:` checking texts (a judge: `llama_guard`, `llm_judge`), not the step's own."
    )
    band: tuple[float, float] = Field(
        description="[low, high): step scores in this range are escalated; 0 <= low < high <= 1. A score of "
        "exactly `high` is not escalated."
    )
    threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="An escalated step fires when this detector's score >= this."
    )
    timeout_ms: int = Field(
        10_000,
        ge=1,
        description="Longer than this counts as an error of the step (its `on_error` applies); the step's own "
        "`timeout_ms` bounds its own detector only.",
    )


def band_problem(low: float, high: float) -> str | None:
    """Why [low, high] is not an escalation band, or None."""
    if 0.0 <= low < high <= 1.0:
        return None
    return f"must be [low, high] with 0 <= low < high <= 1, got [{low}, {high}]"


class _StepBase(StrictModel):
    detector: str = Field(description="A key of `detectors:`.")
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="The step fires when the detector's score >= this.")
    timeout_ms: int = Field(2000, ge=1, description="Longer than this counts as a detector error.")
    on_error: Literal["block", "allow"] = Field("block", description="block = fail closed; allow = fail open.")
    name: str | None = Field(None, description="Name in audit/metrics; defaults to `<stage>.<index>.<detector>`.")
    roles: list[TextRole] | None = Field(
        None,
        description=(
            "Only texts of these roles; null = all. tool = tool results (and the legacy function role), "
            "tool_call = calls the model made, tool_definition = tools/functions/response_format schemas, "
            "metadata = other forwarded fields (user, metadata, vendor fields), image_text = text read from "
            "request images by OCR (`proxy.images`)."
        ),
    )
    labels: list[str] | None = Field(
        None,
        description="Only these of the detector's labels count (entities such as `PERSON`, categories such as "
        "`violence`): a finding or category outside the list neither fires the step nor is edited, though its "
        "span is still redacted in the audit log. null = all. One detector can so anonymize names on input and "
        "redact only contact details on output.",
        min_length=1,
    )
    scope: Literal["message", "conversation"] = Field(
        "message",
        description="`message`: each text on its own. `conversation` (input, `block`/`flag` only): windows of the "
        "last `window_turns` messages of the step's roles, joined, so an instruction split across turns is "
        "read whole; windows already judged are remembered by their messages' hashes, so a growing "
        "conversation costs one new window per request.",
    )
    window_turns: int = Field(4, ge=2, le=50, description="Messages per conversation window.")
    window_chars: int = Field(
        4000,
        ge=100,
        description="Most characters of one window: a longer message keeps its start and end (where a split "
        "instruction continues), each message getting an equal share.",
    )
    escalate: Escalation | None = Field(
        None,
        description="A cascade: texts whose score falls in `band` are judged by another detector instead. See "
        "Escalation.",
    )


class BlockStep(_StepBase):
    action: Literal["block"]


class RedactStep(_StepBase):
    action: Literal["redact"]


class AnonymizeStep(_StepBase):
    action: Literal["anonymize"]


class FlagStep(_StepBase):
    action: Literal["flag"]


class StripStep(_StepBase):
    """Removes the spans the detector found (terminal control sequences in answers: `control_chars`)."""

    action: Literal["strip"]


class EscapeStep(_StepBase):
    """Keeps the spans but spells their control characters out (`\\x1b[31m`), so a terminal or log shows them
    instead of obeying them."""

    action: Literal["escape"]


class ReviseStep(_StepBase):
    """Output only: the backend critiques and rewrites its answer against `constitution:` (blocks in streams)."""

    action: Literal["revise"]


Step = Annotated[
    BlockStep | RedactStep | AnonymizeStep | FlagStep | StripStep | EscapeStep | ReviseStep,
    Field(discriminator="action"),
]
Action = Literal["block", "redact", "anonymize", "flag", "strip", "escape", "revise"]
# The actions that rewrite the spans a detector found (`Edit.action`).
EditAction = Literal["redact", "anonymize", "strip", "escape"]

PRINCIPLES_PLACEHOLDER = "{principles}"
DEFAULT_CRITIQUE_PROMPT = (
    "Critique your previous answer against these principles:\n{principles}\n"
    "Name every way in which the answer breaks one of them. Do not rewrite the answer yet."
)
DEFAULT_REVISION_PROMPT = (
    "Rewrite your previous answer so that it follows every principle and addresses the critique. "
    "Reply with the rewritten answer only, without preamble or commentary."
)


class Constitution(StrictModel):
    """The principles a `revise` step asks the backend to apply to its own answer (Constitutional AI)."""

    principles: list[str] = Field(min_length=1, description="The rules the answer must follow, one per item.")
    critique_prompt: str = Field(
        DEFAULT_CRITIQUE_PROMPT,
        description="User turn asking for a critique; `{principles}` becomes the numbered principles.",
    )
    revision_prompt: str = Field(
        DEFAULT_REVISION_PROMPT, description="User turn, after the critique, asking for the rewritten answer."
    )
    max_revisions: int = Field(
        1, ge=1, le=5, description="Critique-and-rewrite rounds before a still-firing answer is blocked."
    )
    timeout_s: float = Field(
        30.0, gt=0, description="Time for all rounds of one answer; when it runs out the answer is blocked."
    )


Signal = Literal["blocks", "flags", "feedback", "output_feedback"]


def _default_signals() -> list[Signal]:
    return ["blocks", "flags", "feedback"]


class LearningConfig(StrictModel):
    """What the sidecar trainer may learn from this policy's traffic (read by `guardproxy trainer dataset build`
    when its config names this policy)."""

    signals: list[Signal] = Field(
        default_factory=_default_signals,
        description="Training signals: `blocks` (a step blocked), `flags` (it fired with another action), "
        "`feedback` (reviewers' labels), `output_feedback` (the input passed but the answer was blocked: a "
        "candidate positive for the input detector).",
    )
    use_candidates: bool = Field(
        False, description="Train on output-feedback candidates. Off: they are kept apart for review."
    )


class AuditConfig(StrictModel):
    path: str = Field("./guardproxy-audit.db", description="SQLite file of the embedded audit store.")
    url: str | None = Field(
        None,
        description="A networked audit store instead of `path`, shared by replicas: `postgresql://user@host/db` "
        "(libpq URL; needs the `postgres` extra). Read by the proxy, `audit export/label`, `replay` and the trainer.",
        pattern=r"^postgres(ql)?://",
    )
    store_raw: bool = Field(False, description="Store raw text. Off: only PII-redacted text is ever written.")
    queue_size: int = Field(10_000, ge=1)
    on_full: Literal["wait", "fail"] = Field("wait", description="When the write queue is full: wait or fail (503).")

    @property
    def store(self) -> str:
        """What `open_store` opens: `url` when set, else the SQLite `path`."""
        return self.url if self.url is not None else self.path


class AuthConfig(StrictModel):
    """Who may call the proxy. `none` (the default, for a first run) lets anyone who reaches the port in;
    `keys` requires `Authorization: Bearer gp-...` from `guardproxy keys create`."""

    mode: Literal["none", "keys"] = Field(
        "none",
        description="`none`: no key needed (start-up warns when bound beyond loopback); `keys`: every route but "
        "/healthz needs a key, /v1/feedback a reviewer key and /metrics an admin key.",
    )
    keys_path: str = Field(
        "./guardproxy-keys.db",
        description="SQLite file of the key store (hashes only), read at start-up; `guardproxy keys` writes it.",
    )
    cache_ttl_s: float = Field(
        5.0,
        ge=0,
        description="Seconds a checked key is remembered in memory: a revoked key is refused within this time.",
    )


class StateConfig(StrictModel):
    """State that replicas share: per-key rate-limit counters and the conversation-scoped anonymize vault.
    Without `url` it lives in the proxy's memory (one process); with `url`, in Redis (every replica)."""

    url: str | None = Field(
        None,
        description="`redis://[:password@]host:port/db` (or `rediss://`; needs the `redis` extra): rate limits and "
        "anonymize placeholders shared by every replica. Unset: in-process (each replica on its own). Read at "
        "start-up.",
        pattern=r"^rediss?://",
    )
    on_error: Literal["fail_closed", "fail_open"] = Field(
        "fail_closed",
        description="Redis unreachable: `fail_closed` answers 503 `state_unavailable` to requests that need it "
        "(keyed requests; anonymize steps); `fail_open` serves them with rate limits unchecked and placeholders "
        "kept to the request (logged `state_unavailable`).",
    )
    timeout_s: float = Field(
        0.5, gt=0, le=30, description="Connect and read timeout of one Redis call: a down Redis fails fast."
    )
    conversation_ttl_s: float = Field(
        3600.0,
        gt=0,
        description="Seconds a conversation's placeholders are kept after its last turn (in Redis or in memory).",
    )


class StreamSettings(StrictModel):
    holdback_chars: int = Field(
        256, ge=1, description="Max characters held back when no sentence boundary is found; bounds span length."
    )
    context_chars: int = Field(200, ge=0, description="Released text re-shown to output steps as context.")
    min_window_chars: int = Field(
        0,
        ge=0,
        description="Nothing is released before the text checked holds this many characters (or the answer ends), "
        "so a first line like `Slice it:` is not judged alone; 0 = off. The shipped policies set 64.",
    )


class ImageSettings(StrictModel):
    """Reading the text inside request images (chat `image_url` parts) with Tesseract OCR.

    An image read this way is checked as its text (role `image_text`) and forwarded when the chain passes it;
    an image that is not read (OCR off, a remote URL whose host is not in `fetch_hosts`, a failed read) stays
    unscanned and `proxy.unscanned` decides. OCR reads printed text, not handwriting or text drawn to fool it:
    a vision model may read more than OCR does."""

    ocr: bool = Field(False, description="Read `data:` images (and remote ones from `fetch_hosts`) with Tesseract.")
    languages: str = Field("eng", pattern=r"^[a-z_]+(\+[a-z_]+)*$", description="Tesseract `-l` languages.")
    max_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="Largest image (decoded bytes); larger gets 413 before any OCR."
    )
    max_pixels: int = Field(
        25_000_000, ge=10_000, description="Largest width x height; larger gets 413 before it is decoded."
    )
    max_images: int = Field(8, ge=1, description="Most images OCRed per request; more gets 413.")
    timeout_s: float = Field(
        10.0, gt=0, description="Time for one image's OCR; slower stays unscanned (`image_ocr_timeout`)."
    )
    concurrency: int = Field(2, ge=1, description="Tesseract processes at once across all requests.")
    fetch_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts (and their subdomains) whose `http(s)://` images are fetched and read; the read bytes "
        "are forwarded inline. Empty: remote images are never fetched.",
    )
    fetch_private: bool = Field(
        False,
        description="Allow fetching from private, loopback and link-local addresses (an intranet image host). "
        "Off: such addresses are refused after DNS resolution, whatever the host name.",
    )
    fetch_timeout_s: float = Field(5.0, gt=0, description="Time for one remote image's download.")


class ProxySettings(StrictModel):
    block_error_code: Literal["content_filter", "invalid_prompt"] = "content_filter"
    refusal_message: str | None = Field(
        None, description="Content of a blocked non-streamed answer; null leaves content null."
    )
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    unscanned: Literal["allow", "flag", "block"] = Field(
        "block",
        description=(
            "Content no detector can read (images, audio, files, unknown part types), in requests and answers: "
            "`block` refuses the request (400) or the answer (content_filter); `flag` forwards it and marks the "
            "audit record; `allow` forwards it. Every case is recorded as an `unscanned` step with the part kinds."
        ),
    )
    response_schema: Literal["allow", "flag", "block"] = Field(
        "flag",
        description="A chat answer that does not follow the request's `response_format` (`json_schema`: invalid "
        "against the schema; `json_object`: not a JSON object): `block` ends that choice with content_filter "
        "(a stream is then held back whole until it can be validated), `flag` delivers it and marks the audit "
        "record, `allow` does not check. An invalid schema in the request is a 400 unless `allow`.",
    )
    # Sized so the model work of a text fits the default 2 s step timeout on 2 cores: the guard classifier costs
    # ~66 ms per 512-token window (~1,900 characters of English), so 32,000 characters are ~17 windows, ~1.1 s.
    max_text_chars: int = Field(
        32_000,
        ge=1,
        description="Longest string (message, tool argument, any JSON string but inline image, audio and file "
        "data) a request may carry; longer gets 413 request_too_large before any detector runs.",
    )
    max_request_chars: int = Field(
        128_000,
        ge=1,
        description="All strings of a request together (keys included); more gets 413 request_too_large "
        "before any detector runs.",
    )
    body_read_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Time a client has to send the whole request body; a slower one gets 408 request_timeout.",
    )
    stream: StreamSettings = Field(default_factory=StreamSettings)
    images: ImageSettings = Field(default_factory=ImageSettings, description="OCR of request images. See its table.")


class ToolPinningConfig(StrictModel):
    """Pinning each caller's tool definitions: a tool whose description or schema changes after its first use
    (a rug pull by a tool server that passed review once) is flagged or blocked."""

    mode: Literal["off", "flag", "block"] = Field(
        "off",
        description="`off`: no pins. `flag`/`block`: the first definition a caller (API key name with "
        "`auth.mode: keys`, else the client label) sends for a tool name is pinned; a later request whose "
        "definition differs is flagged, or refused with 400 content_filter (`tool_changed:<name>`).",
    )
    path: str = Field(
        "./guardproxy-pins.db",
        description="SQLite file of the pins (kept across restarts); `:memory:` keeps them in this process only.",
    )


DEFAULT_PROFILE = "default"


class ToolAccess(StrictModel):
    """Which tools of an MCP server are listed and callable: names or `fnmatch` patterns (`files_*`)."""

    allow: list[str] | None = Field(None, description="Only these tools; null = every tool the deny list leaves.")
    deny: list[str] = Field(default_factory=list, description="Never these tools (wins over `allow`).")


class McpServer(ToolAccess):
    """An upstream MCP server (streamable HTTP) that clients reach through `/mcp/<name>`."""

    url: str = Field(description="The server's streamable-HTTP endpoint, e.g. `http://127.0.0.1:9000/mcp`.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Sent to the server with every request (e.g. its own credentials)."
    )
    timeout_s: float = Field(30.0, gt=0, description="Longest wait for the server's answer; then a JSON-RPC error.")
    max_tools: int = Field(
        200,
        ge=1,
        description="A `tools/list` answer with more tools is refused (JSON-RPC error): every description is "
        "checked, so the list's size bounds the work.",
    )


class Profile(StrictModel):
    """A named pair of chains for some API keys (a tenant); its steps use the policy's `detectors:`."""

    input: list[Step] = Field(default_factory=list, description="Input steps of this profile, as top-level `input:`.")
    output: list[Step] = Field(
        default_factory=list, description="Output steps of this profile, as top-level `output:`."
    )
    mcp_tools: dict[str, ToolAccess] = Field(
        default_factory=dict,
        description="Per MCP server (a key of `mcp_servers:`): the tools this profile may list and call, "
        "on top of the server's own `allow`/`deny`.",
    )


class Policy(StrictModel):
    backends: dict[str, BackendConfig]
    models: list[ModelRoute] = Field(min_length=1)
    detectors: dict[str, DetectorConfig] = Field(default_factory=dict)
    input: list[Step] = Field(default_factory=list)
    output: list[Step] = Field(default_factory=list)
    profiles: dict[str, Profile] = Field(
        default_factory=dict,
        description="Named input/output chains chosen by the API key's `profile` (`guardproxy keys create "
        "--profile`); the top-level `input:`/`output:` are the profile `default`. Detectors are shared.",
    )
    audit: AuditConfig = Field(default_factory=AuditConfig)
    proxy: ProxySettings = Field(default_factory=ProxySettings)
    auth: AuthConfig = Field(default_factory=AuthConfig, description="API keys and roles. See `auth:`.")
    state: StateConfig = Field(
        default_factory=StateConfig,
        description="Rate limits and anonymize placeholders shared by replicas. See `state:`.",
    )
    learning: LearningConfig = Field(
        default_factory=LearningConfig, description="Training signals for the sidecar trainer. See its table."
    )
    tool_pinning: ToolPinningConfig = Field(
        default_factory=ToolPinningConfig, description="Pins of each caller's tool definitions. See its table."
    )
    constitution: Constitution | None = Field(
        None, description="Principles for `revise` output steps. See Constitution; required when one is used."
    )
    mcp_servers: dict[str, McpServer] = Field(
        default_factory=dict,
        description="Upstream MCP servers proxied at `/mcp/<name>`: tool lists, calls and results pass the "
        "chains. See McpServer.",
    )

    @model_validator(mode="after")
    def _references_resolve(self) -> Policy:
        names = [m.name for m in self.models]
        for i, route in enumerate(self.models):
            if route.backend not in self.backends:
                raise ValueError(
                    f"models[{i}].backend: unknown backend {route.backend!r}; defined: {sorted(self.backends)}"
                )
            for fb in route.fallbacks:
                if fb not in names:
                    raise ValueError(f"models[{i}].fallbacks: unknown model {fb!r}; defined: {names}")
        if len(set(names)) != len(names):
            raise ValueError(f"models: duplicate model names in {names}")
        for name, detector in self.detectors.items():
            backend = policy_backend_of(detector)
            if backend is not None and backend not in self.backends:
                raise ValueError(
                    f"detectors.{name}.backend: unknown backend {backend!r}; defined: {sorted(self.backends)}"
                )
        if DEFAULT_PROFILE in self.profiles:
            raise ValueError(
                f"profiles.{DEFAULT_PROFILE}: reserved; the top-level `input:`/`output:` are the default profile"
            )
        chains = [("", self.input, self.output)]
        chains += [(f"profiles.{name}.", p.input, p.output) for name, p in self.profiles.items()]
        for prefix, inputs, outputs in chains:
            self._check_chains(prefix, inputs, outputs)
        if self.constitution is not None:
            _check_constitution(self.constitution)
        for name, profile in self.profiles.items():
            for server in profile.mcp_tools:
                if server not in self.mcp_servers:
                    raise ValueError(
                        f"profiles.{name}.mcp_tools.{server}: unknown MCP server; defined: {sorted(self.mcp_servers)}"
                    )
        return self

    def _check_chains(self, prefix: str, inputs: list[Step], outputs: list[Step]) -> None:
        """One profile's steps; `prefix` (`profiles.<name>.` or empty) makes messages YAML paths."""
        for stage, steps in (("input", inputs), ("output", outputs)):
            for i, step in enumerate(steps):
                if step.detector not in self.detectors:
                    raise ValueError(
                        f"{prefix}{stage}[{i}].detector: unknown detector {step.detector!r}; "
                        f"defined: {sorted(self.detectors)}"
                    )
                if step.escalate is not None:
                    self._check_escalation(f"{prefix}{stage}[{i}]", step, step.escalate)
        for i, step in enumerate(inputs):
            if step.scope == "conversation" and step.action not in ("block", "flag"):
                raise ValueError(
                    f"{prefix}input[{i}].scope: a conversation window is one text made of several messages, so its "
                    f"step can `block` or `flag` but not {step.action!r} (use a message-scoped step for that)"
                )
            if step.action == "revise":
                raise ValueError(
                    f"{prefix}input[{i}].action: 'revise' rewrites answers, so it is allowed in output steps only"
                )
        for i, step in enumerate(outputs):
            if step.scope == "conversation":
                raise ValueError(f"{prefix}output[{i}].scope: 'conversation' applies to input steps only")
        revising = [i for i, step in enumerate(outputs) if step.action == "revise"]
        if revising and self.constitution is None:
            raise ValueError(
                f"{prefix}output[{revising[0]}].action: 'revise' needs a top-level `constitution:` with `principles:`"
            )

    def _check_escalation(self, where: str, step: _StepBase, escalation: Escalation) -> None:
        """A cascade's references and band; custom detectors' scopes are checked when the chain is built."""
        if escalation.detector not in self.detectors:
            raise ValueError(
                f"{where}.escalate.detector: unknown detector {escalation.detector!r}; defined: {sorted(self.detectors)}"
            )
        if escalation.detector == step.detector:
            raise ValueError(
                f"{where}.escalate.detector: {escalation.detector!r} is the step's own detector; escalate to another "
                "(slower, better) one"
            )
        problem = band_problem(*escalation.band)
        if problem is not None:
            raise ValueError(f"{where}.escalate.band: {problem}")
        for field, name in (("detector", step.detector), ("escalate.detector", escalation.detector)):
            if not checks_texts(self.detectors[name]):
                raise ValueError(
                    f"{where}.{field}: {name!r} checks whole requests, not texts, so it cannot take part in a cascade"
                )

    @property
    def profile_names(self) -> list[str]:
        return [DEFAULT_PROFILE, *self.profiles]

    def route(self, model: str) -> ModelRoute | None:
        for r in self.models:
            if r.name == model:
                return r
        return None


def _check_constitution(c: Constitution) -> None:
    # Checked from the policy's validator: its messages carry the YAML path, which the loader points at.
    for i, principle in enumerate(c.principles):
        if not principle.strip():
            raise ValueError(f"constitution.principles[{i}]: a principle must not be empty")
    if PRINCIPLES_PLACEHOLDER not in c.critique_prompt:
        raise ValueError(
            f"constitution.critique_prompt: must contain {PRINCIPLES_PLACEHOLDER}, where the principles are put"
        )
    if not c.revision_prompt.strip():
        raise ValueError("constitution.revision_prompt: must not be empty")
