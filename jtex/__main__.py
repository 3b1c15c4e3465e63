"""``python -m jtex ...``: the same command line as ``jtex ...``."""

import sys

from jtex.cli import main

sys.exit(main())
