"""Thin entry point: ``python run.py -s EXEMPLAR ...`` == ``jtex synth ...``."""

import sys

from jtex.cli import main

if __name__ == "__main__":
    sys.exit(main())
