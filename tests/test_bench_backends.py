"""`guardproxy bench backends` on a tiny local model and the fake OpenAI-compatible upstream."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from guardproxy.backend_bench import add_bench_parser, run_bench
from guardproxy.backend_bench.backends import load_prompts
from guardproxy.evaluation.metrics import percentile
from tests.fake_upstream import FakeUpstream

POLICY = """
backends:
  cloud: {{type: openai, base_url: "{upstream}", max_retries: 0}}
{local}
models:
  - {{name: cloud-model, backend: cloud, upstream_model: gpt-fake}}
{local_model}
detectors:
  injection: {{type: injection_heuristic}}
  pii: {{type: pii_regex}}
input:
  - {{detector: injection, action: block}}
  - {{detector: pii, action: anonymize}}
output:
  - {{detector: pii, action: redact}}
audit:
  path: {audit}
"""


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="guardproxy")
    add_bench_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["bench", "backends", *argv])


def write_policy(tmp_path: Path, upstream: FakeUpstream, *, local: bool) -> Path:
    local_backend = local_model = ""
    if local:
        pytest.importorskip("transformers")
        from tests.tiny_models import write_tiny_transformers

        model_dir = write_tiny_transformers(tmp_path / "tiny")
        local_backend = f'  local: {{type: transformers, model_path: "{model_dir}", device: cpu}}'
        local_model = "  - {name: tiny-local, backend: local}"
    path = tmp_path / "policy.yaml"
    path.write_text(
        POLICY.format(
            upstream=upstream.base_url, local=local_backend, local_model=local_model, audit=tmp_path / "audit.db"
        )
    )
    return path


def test_bench_backends_table_json_and_chart(
    upstream: FakeUpstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = write_policy(tmp_path, upstream, local=True)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "tell me about the time"}\nwhat is one word\n')
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    args = parse(
        "--policy", str(policy), "--prompts", str(prompts), "--requests", "4", "--max-tokens", "8",
        "--json", str(out_json), "--plot", str(out_png),
    )  # fmt: skip

    assert run_bench(args) == 0

    report = json.loads(out_json.read_text())
    rows = {(r["model"], r["mode"], r["concurrency"]): r for r in report["results"]}
    assert set(rows) == {
        (model, mode, level)
        for model in ("cloud-model", "tiny-local")
        for mode in ("direct", "guarded")
        for level in (1, 4)
    }
    for row in rows.values():
        assert row["requests"] == 4 and row["errors"] == 0, row
        assert row["ttft_p50_ms"] > 0 and row["tokens_per_s_p50"] > 0
        assert 0 < row["latency_p50_ms"] <= row["latency_p99_ms"]
    assert rows[("tiny-local", "direct", 1)]["tokens_per_s_p50"] is not None
    assert set(report["guard_overhead"]) == {"cloud-model", "tiny-local"}
    for overhead in report["guard_overhead"].values():
        assert overhead["concurrency"] == 1 and overhead["share_of_total"] < 1
    assert sum(1 for r in upstream.requests if r.path == "/v1/chat/completions") >= 2 * (2 + 4 + 4)
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert (
        "TTFT p50 ms" in printed and "guard overhead cloud-model" in printed and "guard overhead tiny-local" in printed
    )


def test_unknown_model_is_a_usage_error(
    upstream: FakeUpstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = write_policy(tmp_path, upstream, local=False)
    assert run_bench(parse("--policy", str(policy), "--models", "nope", "--json", str(tmp_path / "x.json"))) == 2
    assert "nope" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_percentile_and_prompts(tmp_path: Path) -> None:
    assert percentile([], 0.5) is None
    assert percentile([5.0, 1.0, 3.0], 0.5) == 3.0
    assert percentile([float(i) for i in range(1, 101)], 0.99) == 99.0
    plain = tmp_path / "p.txt"
    plain.write_text("first\n\n  second  \n")
    assert list(load_prompts(plain)) == ["first", "second"]


@pytest.mark.parametrize("missing", ["httpx", "matplotlib"])
def test_without_the_bench_extra_the_command_says_what_to_install(tmp_path: Path, missing: str) -> None:
    # A None entry in sys.modules makes `import <missing>` fail as if it were not installed.
    script = (
        f"import sys; sys.modules[{missing!r}] = None\n"
        "from guardproxy.cli import main\n"
        f"sys.exit(main(['bench', 'backends', '--policy', {str(tmp_path / 'policy.yaml')!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert f"needs the `bench` extra ({missing} is not installed)" in done.stderr
    assert "pip install 'guardproxy[bench]'" in done.stderr
    assert "Traceback" not in done.stderr
