"""The sidecar trainer: accumulate audit signal -> snapshot -> fine-tune -> evaluate candidate vs current ->
gate -> promote through the model registry (a running proxy hot-swaps to the promoted version).

`run_once(cfg)` is one pass, `watch(cfg)` loops, `cli_main(argv)` is `guardproxy trainer run`. Torch is imported
only when a run trains, so config loading and `--help` work without the trainer extra.
"""

from guardproxy.trainer.sidecar.cli import cli_main
from guardproxy.trainer.sidecar.config import SidecarConfig, load_config
from guardproxy.trainer.sidecar.report import RunReport
from guardproxy.trainer.sidecar.run import run_once, watch

__all__ = ["RunReport", "SidecarConfig", "cli_main", "load_config", "run_once", "watch"]
