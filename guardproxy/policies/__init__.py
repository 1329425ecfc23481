"""The policy: its schema, loading policy.yaml, and watching it for hot reload."""

from guardproxy.policies.loader import load_policy, parse_policy, policy_fingerprint, validate_cmd
from guardproxy.policies.schema import Policy
from guardproxy.policies.watcher import PolicyWatcher

__all__ = ["Policy", "PolicyWatcher", "load_policy", "parse_policy", "policy_fingerprint", "validate_cmd"]
