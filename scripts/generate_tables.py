#!/usr/bin/env python3
"""Regenerate the committed lookup tables that synth reads (offline, fast) (the command's code:
devtools/generate_tables.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devtools.generate_tables import main

if __name__ == "__main__":
    sys.exit(main())
