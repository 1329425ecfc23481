"""`python -m guardproxy.trainer.classifier --config FILE.yaml` (same as `guardproxy train classifier`)."""

import sys

from guardproxy.trainer.classifier.pipeline import cli_main

sys.exit(cli_main())
