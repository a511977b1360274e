#!/usr/bin/env python3
"""Try the docs as a stranger would: an own model and a new stage, each in a scratch copy of the repository, then
all of `make test` there (the command's code: devtools/stranger.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devtools.stranger import main

if __name__ == "__main__":
    sys.exit(main())
