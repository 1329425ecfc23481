"""`guardproxy keys create|list|revoke --policy P`: manage the key store named by the policy's `auth.keys_path`."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from guardproxy.auth.keys import ApiKey, KeyNotFound, NewKey, Role, SQLiteKeyStore, parse_duration_s
from guardproxy.auth.periods import BudgetPeriod


def add_keys_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="API keys (auth.mode: keys): create, list, revoke.").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser("create", help="Create a key and print it once; only its hash is stored.")
    create.add_argument("--name", required=True, help="A unique name (audit records and feedback show it).")
    create.add_argument("--role", choices=[r.value for r in Role], default=Role.CLIENT.value)
    create.add_argument("--models", help="Comma-separated model names the key may use (default: all).")
    create.add_argument(
        "--profile", help="The policy profile (`profiles:`) whose chains this key's requests run (default: `default`)."
    )
    create.add_argument("--rpm", type=int, help="Requests per minute (429 rate_limit_exceeded past it).")
    create.add_argument("--tpm", type=int, help="Tokens per minute, prompt + completion (429 past it).")
    create.add_argument(
        "--budget-tokens", type=int, help="Tokens per --budget-period (429 insufficient_quota past it)."
    )
    create.add_argument(
        "--budget-period",
        choices=[p.value for p in BudgetPeriod],
        help="What --budget-tokens covers: a UTC calendar day, ISO week or calendar month, starting over at the "
        "next one, or the key's lifetime (total, the default).",
    )
    create.add_argument("--expires", help="Lifetime: 30d, 12h, 15m, 2w (default: never).")
    listing = keys.add_parser("list", help="List keys (prefix, name, role, ...); never the keys themselves.")
    revoke = keys.add_parser("revoke", help="Revoke a key by its prefix or name.")
    revoke.add_argument("key", metavar="PREFIX_OR_NAME")
    for p in (create, listing, revoke):
        p.add_argument("--policy", required=True, type=Path, help="Policy whose auth.keys_path is the key store.")


def run_keys(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    from guardproxy.errors import PolicyInvalid
    from guardproxy.policies.loader import load_policy

    try:
        policy = load_policy(args.policy)
    except PolicyInvalid as exc:
        print(f"guardproxy: {exc}", file=err)
        return 2
    store = SQLiteKeyStore(policy.auth.keys_path)
    now = time.time()
    try:
        if args.keys_command == "create":
            return _create(store, args, now, out, err)
        if args.keys_command == "list":
            for key in store.list():
                print(_describe(key, now), file=out)
            return 0
        key = store.revoke(args.key, now=now)
        print(f"revoked {key.name} ({key.prefix}); proxies refuse it within auth.cache_ttl_s", file=out)
        return 0
    except (KeyNotFound, ValueError) as exc:
        print(f"guardproxy: {exc}", file=err)
        return 2
    finally:
        store.close()


def _create(store: SQLiteKeyStore, args: argparse.Namespace, now: float, out: TextIO, err: TextIO) -> int:
    models = tuple(m.strip() for m in args.models.split(",") if m.strip()) if args.models else None
    for name, value in (("--rpm", args.rpm), ("--tpm", args.tpm), ("--budget-tokens", args.budget_tokens)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")
    if args.budget_period is not None and args.budget_tokens is None:
        raise ValueError(f"--budget-period {args.budget_period} needs --budget-tokens N (the tokens per period)")
    new = NewKey(
        name=args.name,
        role=Role(args.role),
        models=models or None,
        profile=args.profile,
        rpm=args.rpm,
        tpm=args.tpm,
        budget_tokens=args.budget_tokens,
        budget_period=BudgetPeriod(args.budget_period or BudgetPeriod.TOTAL),
        expires=None if args.expires is None else now + parse_duration_s(args.expires),
    )
    secret, key = store.create(new, now=now)
    print(secret, file=out)
    print(f"created {_describe(key, now)}", file=err)
    print("This is the only time the key is shown: store it now (the proxy keeps only its hash).", file=err)
    return 0


def _describe(key: ApiKey, now: float) -> str:
    state = "revoked" if key.revoked is not None else "expired" if not key.usable_at(now) else "active"
    fields = [
        key.prefix,
        key.name,
        f"role={key.role}",
        f"models={','.join(key.models) if key.models else '*'}",
        f"created={_iso(key.created)}",
        f"expires={_iso(key.expires) if key.expires else 'never'}",
        state,
    ]
    fields += [f"{n}={v}" for n, v in (("profile", key.profile), ("rpm", key.rpm), ("tpm", key.tpm)) if v is not None]
    if key.budget_tokens is not None:
        fields.append(f"budget_tokens={key.budget_tokens}")
        fields.append(f"budget_period={key.budget_period}")
    return "  ".join(fields)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
