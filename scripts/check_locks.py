#!/usr/bin/env python3
"""Check that every pinned Python package of every layer (and of each tool's own venv) installs from PyPI alone (the
command's code: devtools/check_locks.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devtools.check_locks import main

if __name__ == "__main__":
    sys.exit(main())
