"""`python -m guardproxy.trainer.sidecar --config FILE [--watch]` (same as `guardproxy trainer run`)."""

import sys

from guardproxy.trainer.sidecar.cli import cli_main

sys.exit(cli_main())
