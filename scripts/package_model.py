#!/usr/bin/env python3
"""Package your own XGBoost model for the kit: the cpu artifact and its manifest, then the gpu and inferentia ones (the
command's code: modelpack/package_model.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modelpack.package_model import main

if __name__ == "__main__":
    sys.exit(main())
