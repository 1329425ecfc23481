"""`python -m guardproxy.trainer.dataset build|list|diff|export ...` (same as `guardproxy trainer dataset`)."""

import sys

from guardproxy.trainer.dataset.cli import cli_main

sys.exit(cli_main())
