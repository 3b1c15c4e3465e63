"""Thin entry point: ``python run.py -s EXEMPLAR ...`` == ``jtex synth ...``."""

import sys

from jtex.cli import console

if __name__ == "__main__":
    sys.exit(console())
