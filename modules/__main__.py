"""Entry point for ``python -m modules``."""

import sys

from modules.cli import main

sys.exit(main())
