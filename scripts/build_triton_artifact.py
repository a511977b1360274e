#!/usr/bin/env python3
"""Package a packaged XGBoost model as a Triton model repository for the gpu profile (FIL backend) (the command's code:
modelpack/build_triton_artifact.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modelpack.build_triton_artifact import main

if __name__ == "__main__":
    main()
