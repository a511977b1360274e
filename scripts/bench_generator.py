#!/usr/bin/env python3
"""How much load one generator process drives, and how the load test scales with processes on this machine (the
command's code: devtools/bench_generator.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devtools.bench_generator import main

if __name__ == "__main__":
    sys.exit(main())
