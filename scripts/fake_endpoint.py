#!/usr/bin/env python3
"""A local stand-in for a SageMaker real-time endpoint with a known capacity, for proving the load test (the command's
code: devtools/fake_endpoint.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devtools.fake_endpoint import main

if __name__ == "__main__":
    sys.exit(main())
