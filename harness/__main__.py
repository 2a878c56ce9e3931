"""`python -m harness ...` (and `accelerate launch -m harness run ...`) is the `harness` command."""

import sys

from harness.cli import main

sys.exit(main())
