#!/usr/bin/env python3
"""Train and package the sample "traffic filter" model the SageMaker endpoint serves (the command's code:
modelpack/train_model.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modelpack.train_model import main

if __name__ == "__main__":
    main()
