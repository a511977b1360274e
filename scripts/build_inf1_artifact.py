#!/usr/bin/env python3
"""Convert a packaged XGBoost model to a traced PyTorch model that SageMaker Neo compiles for Inferentia (ml_inf1) (the
command's code: modelpack/build_inf1_artifact.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modelpack.build_inf1_artifact import main

if __name__ == "__main__":
    main()
