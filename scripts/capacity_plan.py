#!/usr/bin/env python3
"""Plan instance counts, autoscaling settings and cost for a target peak request rate (the command's code:
capacity/capacity_plan.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from capacity.capacity_plan import main

if __name__ == "__main__":
    sys.exit(main())
