"""Benign code answers mined from CPython's standard library, for the moderation head (issue 11).

Candidate v6 flagged 3 of the 20 real code answers of tests/data/code_answers.jsonl at the output stage, and v7's
32 hand-written code answers only brought that to 2: in a coding answer, "kill", "terminate", "child", "execute",
"abort" and "password" have technical senses that a few dozen examples do not teach. The standard library is a
large, licensed, real body of such code. Each record is one function or method whose source uses one of those
words, framed as an assistant's answer (a sentence, the code in a fence, the function's own docstring summary),
labelled safe. Functions are chosen by a stable hash, at most PER_MODULE per module, so no module dominates.

Seeds within word-set Jaccard 0.5 of any evaluation text or answer (bench/data/first_run, bench/data/ood,
tests/data/code_answers.jsonl) are dropped, as in scripts/build_everyday_requests.py.

    python scripts/build_stdlib_code_answers.py   # writes configs/train/data/code/stdlib_code_answers.jsonl
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import sys
import sysconfig
import textwrap
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from build_everyday_requests import eval_word_sets, without_near_eval_seeds
from build_hard_negatives import REPO

OUT = REPO / "configs" / "train" / "data" / "code"
# Words with a harmful everyday sense and a technical one; a function is kept when its source uses one.
TRIGGER = re.compile(
    r"\b(kill\w*|terminat\w*|abort\w*|child\w*|zombie|orphan\w*|die|dead\w*|fatal|execut\w*|exec|inject\w*|"
    r"exploit\w*|attack\w*|password\w*|secret\w*|token\w*|shell|spawn\w*|fork\w*|destroy\w*|purge\w*|wipe\w*|"
    r"victim\w*|target\w*|hang\w*|strip\w*|crash\w*|fire\w*|trigger\w*|bomb\w*|hijack\w*|poison\w*|trap\w*|"
    r"signal\w*|force\w*|break\w*|crack\w*|hack\w*|payload\w*|master|slave\w*|suicide|shoot\w*|blow\w*)\b",
    re.IGNORECASE,
)
SKIP_PARTS = {"test", "tests", "idlelib", "lib2to3", "turtledemo", "site-packages", "ensurepip", "pydoc_data"}
MIN_CHARS, MAX_CHARS = 160, 900
PER_MODULE = 6
TOTAL = 600
INTROS = (
    "Here is how CPython's `{module}` does it in `{name}`:",
    "You can follow what the standard library does in `{module}.{name}`:",
    "A working example from `{module}` (`{name}`):",
    "This is the standard library's approach (`{module}.{name}`); adapt it to your code:",
    "Something like this, taken from `{module}`:",
)


@dataclass(frozen=True)
class CodeAnswer:
    text: str
    source: str  # cpython-stdlib:<path relative to the stdlib>
    group: str  # module:qualified name

    def to_json(self) -> str:
        meta = {"kind": "stdlib_code_answer", "group": self.group}
        record = {"text": self.text, "label": "safe", "categories": [], "source": self.source, "meta": meta}
        return json.dumps(record, ensure_ascii=False)


def _rank(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _summary(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    doc = ast.get_docstring(node) or ""
    first = doc.strip().split("\n\n")[0].replace("\n", " ").strip()
    return first if len(first) <= 240 else ""


def _lines(source: str) -> list[bytes]:
    """The file's lines as UTF-8 bytes (ast's offsets count bytes), split as ast.get_source_segment splits."""
    return [line.encode("utf-8") for line in re.split(r"(?<=\r\n)|(?<=\r)(?!\n)|(?<=\n)", source) if line]


def _segment(lines: list[bytes], node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    """The function's source with its first line's indent kept, so that the whole body dedents."""
    assert node.end_lineno is not None and node.end_col_offset is not None
    first, last = node.lineno - 1, node.end_lineno - 1
    if first == last:
        return lines[first][: node.end_col_offset].decode("utf-8")
    body = [lines[first], *lines[first + 1 : last], lines[last][: node.end_col_offset]]
    return b"".join(body).decode("utf-8")


def _functions(path: Path, stdlib: Path) -> Iterator[CodeAnswer]:
    source = path.read_text(encoding="utf-8", errors="replace")
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return
    module = ".".join(path.relative_to(stdlib).with_suffix("").parts).removesuffix(".__init__")
    lines = _lines(source)  # once per file: ast.get_source_segment re-splits the file on every call
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or node.end_lineno is None:
            continue
        code = textwrap.dedent(_segment(lines, node))
        if not MIN_CHARS <= len(code) <= MAX_CHARS or not TRIGGER.search(code):
            continue
        group = f"{module}:{node.name}:{node.lineno}"
        intro = INTROS[int(_rank(group), 16) % len(INTROS)].format(module=module, name=node.name)
        summary = _summary(node)
        text = f"{intro}\n\n```python\n{code}\n```" + (f"\n\n{summary}" if summary else "")
        yield CodeAnswer(text, f"cpython-stdlib:{path.relative_to(stdlib)}", group)


def stdlib_code_answers(stdlib: Path) -> Iterator[CodeAnswer]:
    """At most PER_MODULE answers per module, chosen by a stable hash."""
    for path in sorted(stdlib.rglob("*.py")):
        if SKIP_PARTS & set(path.relative_to(stdlib).parts):
            continue
        yield from sorted(_functions(path, stdlib), key=lambda a: _rank(a.group))[:PER_MODULE]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (default: %(default)s)")
    parser.add_argument("--stdlib", type=Path, default=Path(sysconfig.get_paths()["stdlib"]))
    args = parser.parse_args(argv)
    counts: Counter[str] = Counter()
    ranked = sorted(stdlib_code_answers(args.stdlib), key=lambda a: _rank(a.group))
    kept = without_near_eval_seeds(ranked, eval_word_sets(), counts)[:TOTAL]
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "stdlib_code_answers.jsonl").open("w", encoding="utf-8") as fh:
        fh.writelines(a.to_json() + "\n" for a in kept)
    counts["written"] = len(kept)
    counts["modules"] = len({a.group.split(":")[0] for a in kept})
    for key, n in sorted(counts.items()):
        print(f"{key}\t{n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
