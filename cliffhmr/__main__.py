"""`python -m cliffhmr`, the same as the `cliffhmr` command."""

import sys

from .cli import main

sys.exit(main())
