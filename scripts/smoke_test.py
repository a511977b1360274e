#!/usr/bin/env python3
"""After a deploy: invoke the stage's endpoint once with the sample row and check the model answers (the command's
code: operations/smoke_test.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from operations.smoke_test import main

if __name__ == "__main__":
    sys.exit(main())
