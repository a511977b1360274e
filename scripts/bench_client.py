#!/usr/bin/env python3
"""Show what the pooled client saves: N sequential calls on one kept-alive connection, not N connections (the command's
code: devtools/bench_client.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devtools.bench_client import main

if __name__ == "__main__":
    sys.exit(main())
