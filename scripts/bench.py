#!/usr/bin/env python3
"""Benchmarks: synth time of the app against an empty CDK app (the jsii floor), and the test suite (the command's code:
devtools/bench.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devtools.bench import main

if __name__ == "__main__":
    sys.exit(main())
