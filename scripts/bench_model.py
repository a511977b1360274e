#!/usr/bin/env python3
"""The model's line of the latency budget, measured on your own packaged model (docs/load-testing.md) (the command's
code: devtools/bench_model.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devtools.bench_model import main

if __name__ == "__main__":
    sys.exit(main())
