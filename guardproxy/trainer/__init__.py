"""Sidecar trainer (later issues): fine-tunes detectors from audit events.

It reads the audit store (`guardproxy.audit`) and never imports `guardproxy.proxy`.
"""
