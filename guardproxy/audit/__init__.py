"""The audit log: record types and the store they are written to.

Kept apart from `guardproxy.proxy` so the trainer can read the store without importing the proxy.
"""

from guardproxy.audit.records import BLOCKED_OUTCOMES, AuditRecord, Outcome, Segment, StepRecord
from guardproxy.audit.store import AuditStore, UnsupportedStore, open_store

__all__ = [
    "BLOCKED_OUTCOMES",
    "AuditRecord",
    "AuditStore",
    "Outcome",
    "Segment",
    "StepRecord",
    "UnsupportedStore",
    "open_store",
]
