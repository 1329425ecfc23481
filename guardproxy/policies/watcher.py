"""Hot reload: poll policy.yaml, and the model registries its detectors serve from, and hand each valid,
changed policy to a callback.

Polling `stat` needs no dependency and catches every way editors save: in-place writes (mtime,
size) and write-then-rename (inode). An invalid edit is logged and ignored: the last good policy
stays in force until the file is fixed.

Atomic reloads: a file being written in place is, between two writes, often valid YAML with fewer steps
(a truncated chain). Two defences, so such a prefix is never applied:
- settling: new content is applied only once it has been seen unchanged (stat and SHA-256) at two polls at
  least `settle_s` apart; a writer that pauses for less than that is never read half-way;
- the end marker: once the file in force ends with `# end of policy` (the shipped policies do), a new
  content without it as its last line is incomplete and is not applied, however long it stays. This
  catches a writer that pauses for longer than any settle interval.
Writing a new file and renaming it over the old one (`os.replace`) needs neither: the watcher can only
ever read the old file or the whole new one.

Models: a detector configured with a registry directory (`models/<name>/`) serves the version it resolved
when it was built. When the registry resolves elsewhere (a `CURRENT` pointer was promoted or rolled back,
or a newer `vN` appeared and there is no pointer), the same policy is handed to the callback again: the app
builds a new runtime and swaps it in, exactly as for a policy edit. A version that fails to build is
logged and the old runtime stays; it is retried only when the registry changes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

from guardproxy.detectors.base import ModelSourcesOf
from guardproxy.detectors.configs import CustomDetectorConfig
from guardproxy.detectors.model_files import ModelDir, resolve_model_dir
from guardproxy.detectors.registry import detector_class as registered_class
from guardproxy.errors import DetectorFailed, PolicyInvalid
from guardproxy.policies.loader import END_MARKER, ends_with_end_marker, parse_policy
from guardproxy.policies.schema import Policy

log = structlog.get_logger(__name__)

# A file modified this recently may be rewritten within the same mtime tick with the same size
# (coarse filesystem clocks), so its content is re-hashed on every poll until it ages ("racy git").
_RACY_NS = 2_000_000_000


@dataclass(frozen=True, slots=True)
class _FileState:
    mtime_ns: int
    size: int
    inode: int


@dataclass(frozen=True, slots=True)
class _Candidate:
    """New content seen at a poll, not yet applied: it must still be the same at a later poll."""

    state: _FileState | None
    digest: bytes
    seen_at: float  # time.monotonic()


class PolicyWatcher:
    """Watches one policy file. `run()` until `stop()` or cancellation; `current` is the last good policy.

    Pass `current` (the policy the app loaded) so an edit made before the watcher starts is not
    missed; without it, the first valid read becomes the baseline without a callback.
    `on_error` receives the message of every rejected change (e.g. to count failed reloads).

    `loaded_models` reports the model directories the serving runtime's detectors loaded (e.g.
    `lambda: detector_model_dirs(holder.current.detectors.values())`): exact, whatever happened before
    the watcher started. Without it, the watcher resolves the policy's registries itself when it starts
    and before each rebuild, so a promotion made while the proxy was starting up may go unnoticed until
    the next change.
    """

    def __init__(
        self,
        path: str | Path,
        on_change: Callable[[Policy], Awaitable[None]],
        *,
        current: Policy | None = None,
        interval_s: float = 1.0,
        settle_s: float | None = None,
        env: Mapping[str, str] | None = None,
        on_error: Callable[[str], None] | None = None,
        loaded_models: Callable[[], Iterable[ModelDir]] | None = None,
    ) -> None:
        self.path = Path(path)
        self.current = current
        self._on_change = on_change
        self._on_error = on_error
        self._interval_s = interval_s
        # Default: one poll interval, i.e. new content is applied at the second poll that sees it unchanged.
        self._settle_s = interval_s if settle_s is None else settle_s
        self._env = env
        self._stopped = asyncio.Event()
        self._state: _FileState | None = None
        self._digest: bytes | None = None
        self._candidate: _Candidate | None = None
        self._seen = False
        # The content last accepted ended with END_MARKER: from then on, a content without it is incomplete.
        self._marked = False
        self._adopt_first = current is None
        self._loaded_models = loaded_models
        # Without a report from the runtime: what the policy's registries resolved to at the last build.
        self._assumed_models = policy_model_dirs(current) if current is not None and loaded_models is None else ()
        self._failed_models: tuple[str, ...] | None = None  # a target that failed to build: not retried
        if current is not None:
            self._adopt_file_in_force(current)

    def _adopt_file_in_force(self, current: Policy) -> None:
        """The file as it is now is the baseline, if it is what the app loaded: whether it carries the end
        marker must be known before the first edit, or a half-written edit made at once would slip through."""
        state = self._stat()
        try:
            content = self.path.read_bytes()
            text = content.decode("utf-8-sig")
            if parse_policy(text, source=str(self.path), env=self._env) != current:
                return  # changed since the app loaded it: the first poll treats it as an edit
        except (OSError, UnicodeDecodeError, PolicyInvalid):
            return
        self._seen, self._state, self._digest = True, state, hashlib.sha256(content).digest()
        self._marked = ends_with_end_marker(text)

    def stop(self) -> None:
        self._stopped.set()

    async def run(self) -> None:
        # The first check runs at once: it catches an edit made between start-up's load and now.
        while not self._stopped.is_set():
            await self.check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self._interval_s)

    async def check(self) -> None:
        """One poll: reload if the file's content changed since the last poll, or a model version did."""
        await self._check_policy()
        await self._check_models()

    async def _check_policy(self) -> None:
        state = self._stat()
        if self._seen and state == self._state and not _is_racy(state):
            return
        try:
            content = self.path.read_bytes()
        except OSError as exc:
            self._seen, self._state, self._digest, self._candidate = True, state, None, None
            self._reject(f"{self.path}: cannot read the policy file: {exc.strerror}")
            return
        digest = hashlib.sha256(content).digest()
        if digest == self._digest:
            self._seen, self._state, self._candidate = True, state, None
            return
        # A writer mid-save changes the file again within moments: apply only content that held still.
        now = time.monotonic()
        candidate = self._candidate
        if candidate is None or (candidate.state, candidate.digest) != (state, digest):
            self._candidate = _Candidate(state, digest, now)
            return  # the next poll looks again
        if now - candidate.seen_at < self._settle_s:
            return
        self._seen, self._state, self._digest, self._candidate = True, state, digest, None
        await self._reload(content)

    async def _reload(self, content: bytes) -> None:
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            self._reject(f"{self.path}: not UTF-8 text ({exc.reason} at byte {exc.start})")
            return
        marked = ends_with_end_marker(text)
        if self._marked and not marked:
            # Checked before parsing: a truncated file is often valid YAML with fewer steps.
            self._reject(
                f"{self.path}: incomplete: the policy in force ends with {END_MARKER!r} and this version does "
                f"not; it is applied once {END_MARKER!r} is its last line (a file still being written?)"
            )
            return
        adopt, self._adopt_first = self._adopt_first, False
        try:
            policy = parse_policy(text, source=str(self.path), env=self._env)
        except PolicyInvalid as exc:
            self._reject(exc.message)
            return
        if adopt or policy == self.current:
            reason = "first read is the baseline" if adopt else "no change in effect"
            log.debug("policy_reload_skipped", path=str(self.path), reason=reason)
            self.current, self._marked = policy, marked
            if adopt and self._loaded_models is None:
                self._assumed_models = policy_model_dirs(policy)
            return
        assumed = policy_model_dirs(policy) if self._loaded_models is None else ()
        try:
            await self._on_change(policy)
        except Exception as exc:
            # The app could not apply a valid policy (e.g. a detector failed to build): the old one
            # stays in force and watching goes on; the next edit retries.
            log.exception("policy_reload_failed", path=str(self.path), error=f"applying the policy failed: {exc}")
            if self._on_error is not None:
                self._on_error(f"applying the policy failed: {exc}")
            return
        self.current, self._marked = policy, marked
        self._assumed_models, self._failed_models = assumed, None

    async def _check_models(self) -> None:
        policy = self.current
        if policy is None:
            return
        loaded = tuple(self._loaded_models()) if self._loaded_models is not None else self._assumed_models
        changes: list[dict[str, str]] = []
        target: list[str] = []
        for model in loaded:
            try:
                now = resolve_model_dir(model.source)
            except DetectorFailed as exc:
                target.append(f"{model.source}: {exc.message}")
                changes.append({"source": str(model.source), "old": model.loaded.name, "error": exc.message})
                continue
            target.append(f"{now}: {_dir_signature(now)}")
            if now != model.loaded:
                changes.append({"source": str(model.source), "old": model.loaded.name, "new": now.name})
        if not changes or tuple(target) == self._failed_models:
            return
        unresolved = [c for c in changes if "error" in c]
        if unresolved:
            message = "; ".join(c["error"] for c in unresolved)
            log.error("model_reload_failed", changes=changes, error=message)
            self._model_reload_failed(tuple(target), message)
            return
        assumed = policy_model_dirs(policy) if self._loaded_models is None else ()
        try:
            await self._on_change(policy)
        except Exception as exc:
            # A new version that does not load (corrupt, incompatible card) must not take the proxy down.
            message = f"building the new model version failed: {exc}"
            log.exception("model_reload_failed", changes=changes, error=message)
            self._model_reload_failed(tuple(target), message)
            return
        self._assumed_models, self._failed_models = assumed, None
        log.info("model_reloaded", changes=changes)

    def _model_reload_failed(self, target: tuple[str, ...], message: str) -> None:
        self._failed_models = target  # not retried until the registry changes again
        if self._on_error is not None:
            self._on_error(message)

    def _reject(self, message: str) -> None:
        log.error("policy_reload_failed", path=str(self.path), error=message)
        if self._on_error is not None:
            self._on_error(message)

    def _stat(self) -> _FileState | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return _FileState(st.st_mtime_ns, st.st_size, st.st_ino)


def policy_model_dirs(policy: Policy) -> tuple[ModelDir, ...]:
    """The registries the policy's detectors serve from, resolved now (the detector classes that take a
    model directory say which: `ModelSourcesOf`). Unresolvable ones are left out: building the runtime
    reports them."""
    found: list[ModelDir] = []
    for name, config in policy.detectors.items():
        if isinstance(config, CustomDetectorConfig):
            continue  # custom detectors: only a running instance can tell (`loaded_models`)
        detector_class = registered_class(name, config)
        if not isinstance(detector_class, ModelSourcesOf):
            continue
        for source in detector_class.model_sources(config):
            try:
                found.append(ModelDir(source, resolve_model_dir(source)))
            except DetectorFailed:
                continue
    return tuple(dict.fromkeys(found))


def _dir_signature(path: Path) -> str:
    """Changes when a file of the version directory does: a version that failed to load while it was being
    copied in, or that was repaired in place, is retried."""
    try:
        entries = sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(path))
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    return hashlib.sha256(repr(entries).encode()).hexdigest()[:16]


def _is_racy(state: _FileState | None) -> bool:
    return state is not None and time.time_ns() - state.mtime_ns < _RACY_NS
