#!/usr/bin/env python3
"""Simulate a day of the sharded fleet under target tracking: minutes and share of calls over the SLO, and the
scheduled capacity that removes them (the command's code: capacity/simulate.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from capacity.simulate import main

if __name__ == "__main__":
    sys.exit(main())
