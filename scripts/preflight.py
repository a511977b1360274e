#!/usr/bin/env python3
"""Before a first deploy: read, with the deployer's credentials, what decides whether the deploy can succeed, and (the
command's code: operations/preflight.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from operations.preflight import main

if __name__ == "__main__":
    sys.exit(main())
