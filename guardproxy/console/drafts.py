"""The policy page's draft: validate pasted YAML (line-numbered errors) and replay it over the newest records.

Drafts are parsed without the server's environment: `${VAR}` in a draft cannot read the proxy's secrets
into an error message a reviewer sees (`${VAR:-default}` takes its default).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from guardproxy.audit.feedback import Feedback
from guardproxy.audit.records import AuditRecord
from guardproxy.audit.search import RecordFilter
from guardproxy.audit.store import AuditStore, latest_feedback
from guardproxy.errors import PolicyInvalid
from guardproxy.evaluation.replay import ReplayReport, replay_with_policy
from guardproxy.policies.loader import parse_policy
from guardproxy.policies.schema import Policy

DRAFT_SOURCE = "draft"
DEFAULT_REPLAY = 500
MAX_REPLAY = 10_000
MAX_DRAFT_CHARS = 200_000


@dataclass(frozen=True, slots=True)
class Validation:
    policy: Policy | None
    errors: tuple[str, ...]  # each "draft:LINE: field: problem", as the loader words it


@dataclass(frozen=True, slots=True)
class ChangedRow:
    record: AuditRecord
    now_blocked: bool
    review: Feedback | None

    @property
    def verdict(self) -> str:
        """How the change scores against the reviewer's label of this record, if any."""
        if self.review is None:
            return "unlabelled"
        label = self.review.label
        if label == "false_positive":
            return "fixes a false positive" if not self.now_blocked else "still blocked"
        if label == "false_negative":
            return "fixes a false negative" if self.now_blocked else "still missed"
        return "breaks a correct decision"


@dataclass(frozen=True, slots=True)
class DraftReplay:
    report: ReplayReport
    changed: tuple[ChangedRow, ...]
    records: int


def validate(text: str) -> Validation:
    if len(text) > MAX_DRAFT_CHARS:
        return Validation(None, (f"{DRAFT_SOURCE}: the draft is longer than {MAX_DRAFT_CHARS} characters",))
    try:
        return Validation(parse_policy(text, source=DRAFT_SOURCE, env={}), ())
    except PolicyInvalid as exc:
        return Validation(None, tuple(line for line in str(exc).splitlines() if line.strip()))


async def replay_draft(policy: Policy, store: AuditStore, newest: int) -> DraftReplay:
    records = list(store.search(RecordFilter(), limit=newest))
    records.reverse()  # oldest first, as `guardproxy replay` reads them
    ids = {r.request_id for r in records}
    feedback = latest_feedback(store.feedback(request_ids=ids))
    report = await replay_with_policy(policy, records, feedback=feedback)
    by_id = {r.request_id: r for r in records}
    changed = tuple(
        ChangedRow(by_id[rid], now_blocked, feedback.get(rid))
        for now_blocked, rids in ((True, report.newly_blocked), (False, report.newly_allowed))
        for rid in rids
    )
    return DraftReplay(report, changed, len(records))


MASK = '"***"'  # quoted: a bare *** is a YAML alias, and the masked text must still parse as a draft
# A secret written into the policy file itself (not `${VAR}`) is masked before a reviewer sees the file.
_SECRET_VALUE = re.compile(
    r"(?im)^(\s*-?\s*[\w-]*(?:api_key|apikey|access_key|secret_key|password|secret|token)\s*:\s*)(?![\s\"']*\$\{)(\S.*)$"
)
_SECRET_INLINE = re.compile(
    r"(?i)((?<!\$)[{,]\s*[\w-]*(?:api_key|apikey|access_key|secret_key|password|secret|token)\s*:\s*)(?![\"']?\$\{)([^,}\s]+)"
)


def running_text(path: Path) -> str:
    """The policy file as a reviewer may see it: read-only, secrets masked."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return f"# cannot read {path}: {exc.strerror or exc}"
    return mask_secrets(text)


def mask_secrets(text: str) -> str:
    """The policy text with literal credentials replaced by `"***"` (environment references stay readable)."""
    text = _SECRET_VALUE.sub(lambda m: m.group(1) + MASK, text)
    return _SECRET_INLINE.sub(lambda m: m.group(1) + MASK, text)
