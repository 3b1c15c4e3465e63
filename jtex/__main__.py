"""``python -m jtex ...``: the same command line as ``jtex ...``."""

import sys

from jtex.cli import console

sys.exit(console())
