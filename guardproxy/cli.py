"""The `guardproxy` command line. Subcommands are thin: each calls one function of a component."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from guardproxy.core import Context


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="guardproxy", description="OpenAI-compatible guardrail reverse proxy.")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="Run the proxy.")
    serve.add_argument("--policy", required=True, type=Path, help="Policy YAML file (watched for changes).")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--no-watch", action="store_true", help="Do not reload the policy when the file changes.")
    serve.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    serve.add_argument(
        "--header-timeout-s",
        type=float,
        default=10.0,
        help="Seconds a client has to send a request's headers (after connecting, or after the previous response) "
        "before it gets 408; the body's deadline is the policy's proxy.body_read_timeout_s.",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="Processes serving the one port (SO_REUSEPORT), each with its own runtime. In-process rate limits and "
        "anonymize conversations are per worker: set state.url (Redis) to share them.",
    )
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)  # a worker of --workers

    policy = sub.add_parser("policy", help="Policy file tools.").add_subparsers(dest="policy_command", required=True)
    validate = policy.add_parser("validate", help="Exit 0 when valid; else print file:line: field: problem; exit 2.")
    validate.add_argument("path")

    check = sub.add_parser("check", help="Run a policy chain offline on one text and print the decision as JSON.")
    check.add_argument("--policy", required=True, type=Path)
    check.add_argument("--stage", choices=["input", "output"], default="input")
    check.add_argument("text", nargs="?", default="-", help="The text, or - (default) to read standard input.")

    from guardproxy.auth.cli import add_keys_parser

    add_keys_parser(sub)

    from guardproxy.evaluation.cli import add_eval_parser

    add_eval_parser(sub)

    from guardproxy.backend_bench import add_bench_parser

    add_bench_parser(sub)

    train = sub.add_parser(
        "train",
        help="Trainer (needs the `trainer` extra): `train classifier --config F.yaml` fine-tunes and exports a "
        "detector model; `train holdout --config F.yaml --out F.jsonl` exports its held-out test records.",
    )
    train.add_argument("train_command", choices=["classifier", "holdout", "evaluate"])
    train.add_argument("train_args", nargs=argparse.REMAINDER, help="Arguments of the step (see its --help).")

    trainer = sub.add_parser(
        "trainer",
        help="Sidecar trainer: `dataset build|list|diff|export` (training snapshots from the audit log and "
        "feedback), `run --config F [--watch]` (snapshot, fine-tune, evaluate, gate, promote), `versions|promote|"
        "rollback REGISTRY` (the model registry), `shadow-report` (a shadow candidate against the current step), "
        "`sft|dpo --config F` (safety fine-tuning of a local model on a dataset / on revise triples).",
    )
    trainer.add_argument(
        "trainer_command", choices=["dataset", "run", "versions", "promote", "rollback", "shadow-report", "sft", "dpo"]
    )
    trainer.add_argument("trainer_args", nargs=argparse.REMAINDER, help="Arguments of the step (see its --help).")

    audit = sub.add_parser("audit", help="Audit log tools.").add_subparsers(dest="audit_command", required=True)
    export = audit.add_parser("export", help="Print audit records as JSON lines.")
    export.add_argument("--db", required=True, help="Audit SQLite file, or the postgresql:// URL of audit.url.")
    export.add_argument("--blocked", action="store_true", help="Only blocked requests.")
    export.add_argument("--since", help="ISO date/time, or relative: 15m, 2h, 7d.")
    label = audit.add_parser("label", help="Label a logged decision (feedback for the trainer); prints it as JSON.")
    label.add_argument("request_id", metavar="ID", help="The x-guardproxy-request-id of the response.")
    label.add_argument(
        "--as", dest="label", required=True, choices=["false_positive", "false_negative", "correct"], help="The label."
    )
    label.add_argument("--note", default="", help="Why (PII in it is redacted before it is stored).")
    label.add_argument(
        "--db", default="./guardproxy-audit.db", help="Audit SQLite file or postgresql:// URL (default: %(default)s)."
    )
    label.add_argument("--user", help="Who labels it (default: $USER).")
    feedback = audit.add_parser("feedback", help="Print stored feedback as JSON lines, oldest first.")
    feedback.add_argument("--db", required=True, help="Audit SQLite file, or the postgresql:// URL of audit.url.")
    feedback.add_argument("--since", help="ISO date/time, or relative: 15m, 2h, 7d.")
    sample = audit.add_parser("sample", help="A reproducible stratified batch of records to label, as JSON lines.")
    sample.add_argument("--db", required=True, help="Audit SQLite file, or the postgresql:// URL of audit.url.")
    sample.add_argument("--n", type=int, required=True, help="How many records.")
    sample.add_argument("--stratify", default="outcome,detector", help="Fields: outcome, detector, model, review.")
    sample.add_argument("--seed", type=int, default=0, help="The same seed draws the same batch.")
    sample.add_argument("--since", help="ISO date/time, or relative: 15m, 2h, 7d.")
    kappa = audit.add_parser("kappa", help="Cohen's kappa between two reviewers on the requests both labelled.")
    kappa.add_argument("--db", required=True, help="Audit SQLite file, or the postgresql:// URL of audit.url.")
    kappa.add_argument("a", help="A reviewer (the feedback actor: a key's name).")
    kappa.add_argument("b", help="Another reviewer.")

    replay = sub.add_parser(
        "replay",
        help="Re-run a new policy's steps over the audit log and report which decisions would change.",
        description="Replays stored (redacted) records through NEW.yaml's input and output steps and compares "
        "with the decisions made then: newly blocked / newly allowed request ids, per-step fired counts, and how "
        "requests with reviewer feedback fare. See docs/feedback-and-replay.md.",
    )
    replay.add_argument("--policy", required=True, type=Path, metavar="NEW.yaml", help="The policy to try.")
    replay.add_argument("--db", required=True, help="Audit SQLite file, or the postgresql:// URL of audit.url.")
    replay.add_argument("--since", help="Only records at or after: ISO date/time, or relative: 15m, 2h, 7d.")
    replay.add_argument("--limit", type=int, help="At most N records (the oldest first).")
    replay.add_argument("--out", type=Path, metavar="report.json", help="Also write the full report as JSON.")
    replay.add_argument(
        "--no-carry-over",
        action="store_true",
        help="Judge only the stored text (for logs kept with audit.store_raw); default also counts a step as fired "
        "when the record shows its detector firing then, since redaction hid what it found.",
    )
    from guardproxy.redteam.command import add_parser as add_redteam_parser

    add_redteam_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "policy":
        from guardproxy.policies.loader import validate_cmd

        return validate_cmd(args.path, sys.stdout, sys.stderr)
    if args.command == "check":
        return asyncio.run(_check(args.policy, args.stage, args.text))
    if args.command == "keys":
        from guardproxy.auth.cli import run_keys

        return run_keys(args)
    if args.command == "eval":
        from guardproxy.evaluation.cli import run_eval

        return run_eval(args)
    if args.command == "bench":
        from guardproxy.backend_bench import run_bench

        return run_bench(args)
    if args.command == "trainer":
        return _trainer(args.trainer_command, args.trainer_args)
    if args.command == "train":
        if args.train_command == "holdout":
            from guardproxy.trainer.classifier.holdout import cli_main as holdout_main

            return holdout_main(args.train_args)
        if args.train_command == "evaluate":
            from guardproxy.trainer.classifier.reevaluate import cli_main as evaluate_main

            return evaluate_main(args.train_args)
        from guardproxy.trainer.classifier.pipeline import cli_main as train_main

        return train_main(args.train_args)
    if args.command == "audit":
        return _audit(args)
    if args.command == "replay":
        from guardproxy.evaluation.replay import run_replay

        return run_replay(
            args.policy, args.db, since=args.since, limit=args.limit, out=args.out, carry_over=not args.no_carry_over
        )
    if args.command == "redteam":
        from guardproxy.redteam.command import run_redteam

        return run_redteam(args)
    raise AssertionError(args.command)


def _audit(args: argparse.Namespace) -> int:
    from guardproxy.audit.export import export_feedback, export_records, label_record

    if args.audit_command == "label":
        user = args.user or os.environ.get("USER") or "unknown"
        return label_record(args.db, args.request_id, label=args.label, actor=user, note=args.note)
    if args.audit_command == "feedback":
        return export_feedback(args.db, since=args.since, out=sys.stdout)
    if args.audit_command == "sample":
        from guardproxy.audit.sample import sample_cmd

        return sample_cmd(args.db, n=args.n, stratify=args.stratify, seed=args.seed, since=args.since)
    if args.audit_command == "kappa":
        from guardproxy.audit.agreement import kappa_cmd

        return kappa_cmd(args.db, a=args.a, b=args.b)
    return export_records(args.db, blocked=args.blocked, since=args.since, out=sys.stdout)


def _trainer(command: str, argv: list[str]) -> int:
    if command == "dataset":
        from guardproxy.trainer.dataset.cli import cli_main as dataset_main

        return dataset_main(argv)
    if command == "run":
        from guardproxy.trainer.sidecar.cli import cli_main as run_main

        return run_main(argv)
    if command in ("sft", "dpo"):
        from guardproxy.trainer.align.cli import cli_main as align_main

        return align_main([command, *argv])
    if command == "shadow-report":
        from guardproxy.trainer.shadow_report import cli_main as shadow_main

        return shadow_main(argv)
    from guardproxy.trainer.registry_cli import cli_main as registry_main

    return registry_main([command, *argv])


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from guardproxy.auth.access import warn_if_open
    from guardproxy.errors import PolicyInvalid
    from guardproxy.logs import configure_logging
    from guardproxy.policies.loader import load_policy
    from guardproxy.proxy.app import create_app
    from guardproxy.proxy.settings import Settings
    from guardproxy.proxy.slow_clients import http_protocol
    from guardproxy.proxy.workers import reuse_port_socket, supervise

    configure_logging()
    if args.workers < 1:
        print(f"guardproxy: --workers must be 1 or more, got {args.workers}", file=sys.stderr)
        return 2
    if args.workers > 1:
        try:
            policy = load_policy(args.policy)  # refuse a bad policy once, before starting any worker
        except PolicyInvalid as exc:
            print(f"guardproxy: {exc}", file=sys.stderr)
            return 2
        warn_if_open(args.host, policy.auth)
        worker_args = ["--policy", str(args.policy), "--host", args.host, "--port", str(args.port)]
        worker_args += ["--log-level", args.log_level, "--header-timeout-s", str(args.header_timeout_s)]
        return supervise([*worker_args, *(["--no-watch"] if args.no_watch else [])], args.workers)
    try:
        app = create_app(Settings(policy_path=args.policy, watch_policy=not args.no_watch))
    except PolicyInvalid as exc:
        print(f"guardproxy: {exc}", file=sys.stderr)
        return 2
    if not args.reuse_port:  # a worker: its supervisor warned once
        warn_if_open(args.host, load_policy(args.policy).auth)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        http=http_protocol(args.header_timeout_s),
    )
    sockets = [reuse_port_socket(args.host, args.port)] if args.reuse_port else None
    server = uvicorn.Server(config)
    server.run(sockets=sockets)
    return 0 if server.started else 3  # 3: uvicorn's start-up failure code (port taken, lifespan failed)


async def _check(policy_path: Path, stage: str, text: str) -> int:
    from guardproxy.errors import PolicyInvalid
    from guardproxy.policies.loader import load_policy
    from guardproxy.policies.operators import MemoryScope, apply_edits
    from guardproxy.proxy.runtime import build_backends, build_chains

    try:
        policy = load_policy(policy_path)
    except PolicyInvalid as exc:
        print(f"guardproxy: {exc}", file=sys.stderr)
        return 2
    if text == "-":
        text = sys.stdin.read()
    backends = build_backends(policy)
    detectors, input_chain, output_chain = build_chains(policy, backends)
    chain = input_chain if stage == "input" else output_chain
    ctx = Context("cli-check", "input" if stage == "input" else "output", "user" if stage == "input" else "assistant")
    try:
        verdict = await chain.check(text, ctx)
    finally:
        for detector in detectors.values():
            await detector.aclose()
        for backend in backends.values():
            await backend.aclose()
    blocked = verdict.blocked_by
    decision = {
        "stage": stage,
        "decision": "block" if blocked else ("modify" if verdict.edits else ("flag" if verdict.flagged else "allow")),
        "blocked_by": None if blocked is None else {"step": blocked.step.name, "labels": list(blocked.labels)},
        "text": None if blocked else apply_edits(text, verdict.edits, MemoryScope()),
        "steps": [
            {
                "step": r.step.name,
                "detector": r.step.detector_name,
                "action": r.step.action,
                "ran": r.ran,
                "fired": r.fired,
                "score": r.score,
                "labels": list(r.labels),
                "spans": [{"start": s.start, "end": s.end, "label": s.label, "score": s.score} for s in r.spans],
                "latency_ms": round(r.latency_ms, 3),
                "error": r.error,
                "escalation": None
                if r.escalation is None
                else {"detector": r.escalation.detector_name, "score": r.escalation.score, "ran": r.escalation.ran},
            }
            for r in verdict.results
        ],
    }
    print(json.dumps(decision, indent=2))
    return 1 if blocked else 0


if __name__ == "__main__":
    raise SystemExit(main())
