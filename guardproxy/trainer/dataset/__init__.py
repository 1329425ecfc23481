"""Dataset pipeline of the sidecar trainer: versioned, balanced, PII-scrubbed training snapshots built from
the audit log (blocks, flags, reviewer feedback, output-feedback candidates) and base datasets.

`build(cfg)` writes `<output_dir>/<name>/sNNN/` (data.jsonl, candidates.jsonl, manifest.json); `cli_main(argv)`
is `guardproxy trainer dataset build|list|diff|export`.
"""

from guardproxy.trainer.dataset.build import build
from guardproxy.trainer.dataset.cli import cli_main
from guardproxy.trainer.dataset.config import BaseDatasetSpec, DatasetBuildConfig, load_config
from guardproxy.trainer.dataset.export import export
from guardproxy.trainer.dataset.snapshot import SnapshotDiff, SnapshotInfo, diff, list_snapshots, resolve

__all__ = [
    "BaseDatasetSpec",
    "DatasetBuildConfig",
    "SnapshotDiff",
    "SnapshotInfo",
    "build",
    "cli_main",
    "diff",
    "export",
    "list_snapshots",
    "load_config",
    "resolve",
]
