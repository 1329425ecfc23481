"""`python -m guardproxy.trainer.align sft|dpo --config FILE.yaml` (same as `guardproxy trainer sft|dpo`)."""

import sys

from guardproxy.trainer.align.cli import cli_main

sys.exit(cli_main())
