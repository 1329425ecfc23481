"""Hot reload: valid edits reach the callback, invalid ones are logged and the last good policy stays."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog

from guardproxy.errors import PolicyInvalid
from guardproxy.policies import Policy, PolicyWatcher, load_policy, validate_cmd
from guardproxy.policies.loader import END_MARKER, ends_with_end_marker

POLICY = """\
backends:
  upstream: {{type: openai}}
models:
  - {{name: m, backend: upstream}}
detectors:
  inj: {{type: injection_heuristic}}
input:
  - detector: inj
    action: {action}
    threshold: {threshold}
"""


def policy_text(threshold: float = 0.5, action: str = "block") -> str:
    return POLICY.format(threshold=threshold, action=action)


@dataclass
class Harness:
    path: Path
    watcher: PolicyWatcher
    logs: list[dict[str, Any]]
    applied: asyncio.Queue[Policy] = field(default_factory=asyncio.Queue)
    errors: list[str] = field(default_factory=list)

    async def next_policy(self) -> Policy:
        return await asyncio.wait_for(self.applied.get(), timeout=5)

    async def wait_log(self, event: str, count: int = 1) -> list[dict[str, Any]]:
        async def seen() -> list[dict[str, Any]]:
            while len(found := [e for e in self.logs if e["event"] == event]) < count:
                await asyncio.sleep(0.01)
            return found

        return await asyncio.wait_for(seen(), timeout=5)


async def start(tmp_path: Path, on_change: Callable[[Policy], None] | None = None) -> AsyncIterator[Harness]:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text())
    applied: asyncio.Queue[Policy] = asyncio.Queue()
    errors: list[str] = []

    async def apply(policy: Policy) -> None:
        if on_change is not None:
            on_change(policy)
        await applied.put(policy)

    with structlog.testing.capture_logs() as logs:
        watcher = PolicyWatcher(
            path, apply, current=load_policy(path), interval_s=0.02, settle_s=0.005, on_error=errors.append
        )
        harness = Harness(path, watcher, logs, applied, errors)
        task = asyncio.create_task(watcher.run())
        # The file as loaded is the baseline from the start: no poll is needed before the first edit.
        try:
            yield harness
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def settled_check(watcher: PolicyWatcher, settle_s: float = 0.001) -> None:
    """Two polls `settle_s` apart: the first sees new content, the second finds it unchanged and applies it."""
    await watcher.check()
    await asyncio.sleep(settle_s)
    await watcher.check()


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async for h in start(tmp_path):
        yield h


async def test_valid_then_invalid_then_fixed(harness: Harness) -> None:
    harness.path.write_text(policy_text(threshold=0.7))
    assert (await harness.next_policy()).input[0].threshold == 0.7

    harness.path.write_text(policy_text(threshold=0.8, action="blok"))
    [failure] = await harness.wait_log("policy_reload_failed")
    assert failure["log_level"] == "error"
    assert failure["error"].startswith(f"{harness.path}:9:13: input[0].action: 'blok' is not allowed; allowed: block")
    assert harness.errors == [failure["error"]]
    assert harness.applied.empty()
    assert harness.watcher.current is not None
    assert harness.watcher.current.input[0].threshold == 0.7  # the last good policy stays

    harness.path.write_text(policy_text(threshold=0.9))
    assert (await harness.next_policy()).input[0].threshold == 0.9
    assert harness.watcher.current.input[0].threshold == 0.9


async def test_atomic_rename_is_seen(harness: Harness) -> None:
    staged = harness.path.with_name("policy.yaml.tmp")
    staged.write_text(policy_text(action="flag"))
    os.replace(staged, harness.path)
    assert (await harness.next_policy()).input[0].action == "flag"


async def test_comment_only_edit_reloads_nothing(harness: Harness) -> None:
    harness.path.write_text(policy_text() + "# a note\n")
    await harness.wait_log("policy_reload_skipped")
    assert harness.applied.empty()


async def test_same_size_rewrite_within_one_mtime_tick_is_seen(harness: Harness) -> None:
    before = os.stat(harness.path)
    harness.path.write_text(policy_text(threshold=0.7))  # same size as 0.5
    os.utime(harness.path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(harness.path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    assert (await harness.next_policy()).input[0].threshold == 0.7


async def test_deleted_file_keeps_the_policy_until_it_returns(harness: Harness) -> None:
    harness.path.unlink()
    [failure] = await harness.wait_log("policy_reload_failed")
    assert "cannot read the policy file" in failure["error"]
    harness.path.write_text(policy_text(threshold=0.6))
    assert (await harness.next_policy()).input[0].threshold == 0.6


async def test_a_failing_callback_is_logged_and_watching_goes_on(tmp_path: Path) -> None:
    def fail_once(policy: Policy) -> None:
        if policy.input[0].threshold == 0.7:
            raise RuntimeError("detector would not build")

    async for h in start(tmp_path, fail_once):
        h.path.write_text(policy_text(threshold=0.7))
        [failure] = await h.wait_log("policy_reload_failed")
        assert failure["exc_info"] is True
        assert "detector would not build" in failure["error"]
        assert h.watcher.current is not None
        assert h.watcher.current.input[0].threshold == 0.5
        h.path.write_text(policy_text(threshold=0.6))
        assert (await h.next_policy()).input[0].threshold == 0.6


async def test_without_current_the_first_read_is_the_baseline(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text())
    applied: list[Policy] = []

    async def apply(policy: Policy) -> None:
        applied.append(policy)

    watcher = PolicyWatcher(path, apply, interval_s=0.01, settle_s=0.001)
    await settled_check(watcher)
    assert applied == []
    assert watcher.current == load_policy(path)
    path.write_text(policy_text(threshold=0.7))
    await settled_check(watcher)
    assert [p.input[0].threshold for p in applied] == [0.7]


async def test_stop_ends_run_promptly_and_cancel_is_clean(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text())

    applied: list[Policy] = []

    async def apply(policy: Policy) -> None:
        applied.append(policy)

    watcher = PolicyWatcher(path, apply, current=load_policy(path), interval_s=60)
    task = asyncio.create_task(watcher.run())
    await asyncio.sleep(0.1)
    watcher.stop()
    await asyncio.wait_for(task, timeout=1)
    assert applied == []

    task = asyncio.create_task(PolicyWatcher(path, apply, interval_s=60).run())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# --- atomic reloads: a half-written file is never applied (issue 10) ---

FULL = policy_text(threshold=0.7) + "output:\n  - {detector: inj, action: block}\n"
HALF = policy_text(threshold=0.7)  # valid YAML, and a chain with fewer steps: no output step at all


async def test_a_file_rewritten_within_the_settle_interval_is_applied_only_whole(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text())
    applied: list[Policy] = []

    async def apply(policy: Policy) -> None:
        applied.append(policy)

    watcher = PolicyWatcher(path, apply, current=load_policy(path), interval_s=60, settle_s=0.2)
    await settled_check(watcher, 0.2)
    with path.open("w") as f:  # an in-place save, caught between its two writes
        f.write(HALF)
        f.flush()
        await watcher.check()
        await asyncio.sleep(0.05)
        f.write(FULL[len(HALF) :])
    await asyncio.sleep(0.2)
    await watcher.check()  # the content changed since the last poll: it must hold still once more
    assert applied == []
    await asyncio.sleep(0.2)
    await watcher.check()
    assert [len(p.output) for p in applied] == [1]


async def test_once_the_file_in_force_has_the_end_marker_a_version_without_it_waits(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text() + END_MARKER + "\n")
    applied: list[Policy] = []
    errors: list[str] = []

    async def apply(policy: Policy) -> None:
        applied.append(policy)

    watcher = PolicyWatcher(
        path, apply, current=load_policy(path), interval_s=60, settle_s=0.001, on_error=errors.append
    )
    # No poll yet: the watcher knows from the start that the file in force ends with the marker.
    path.write_text(HALF)  # the writer paused for longer than any settle interval
    await settled_check(watcher)
    await settled_check(watcher)
    assert applied == []
    assert len(errors) == 1 and "incomplete" in errors[0] and END_MARKER in errors[0]
    path.write_text(FULL + END_MARKER + "\n")
    await settled_check(watcher)
    assert [len(p.output) for p in applied] == [1]


def test_the_end_marker_must_be_the_last_line(tmp_path: Path) -> None:
    assert load_policy(write(tmp_path, policy_text() + END_MARKER + "\n\n")).input[0].threshold == 0.5
    with pytest.raises(PolicyInvalid) as caught:
        load_policy(write(tmp_path, policy_text() + END_MARKER + "\noutput: []\n"))
    assert caught.value.message.endswith(f":11:1: {END_MARKER!r} must be the last line of the file; text follows it")


def test_validate_notes_a_missing_end_marker(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert validate_cmd(str(write(tmp_path, policy_text())), out, err) == 0
    assert f"the last line is not {END_MARKER!r}" in err.getvalue()
    out, err = io.StringIO(), io.StringIO()
    assert validate_cmd(str(write(tmp_path, policy_text() + END_MARKER + "\n")), out, err) == 0
    assert err.getvalue() == ""


@pytest.mark.parametrize("name", ["policy.yaml", "policy.local.yaml"])
def test_shipped_policies_end_with_the_marker(name: str) -> None:
    assert ends_with_end_marker((Path(__file__).resolve().parents[1] / name).read_text())


def write(directory: Path, text: str) -> Path:
    path = directory / "policy.yaml"
    path.write_text(text)
    return path
