#!/usr/bin/env python3
"""What micro-batching saves and costs: client CPU per row and the latency it adds, per batch size (the command's
code: devtools/bench_batching.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devtools.bench_batching import main

if __name__ == "__main__":
    sys.exit(main())
