#!/usr/bin/env python3
"""Build (and with --start, start) a SageMaker Inference Recommender job for the stage's model (the command's code:
capacity/recommend.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from capacity.recommend import main

if __name__ == "__main__":
    sys.exit(main())
