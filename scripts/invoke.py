#!/usr/bin/env python3
"""Invoke the stage's endpoint with one or many rows and show the predictions and client-side latency (the command's
code: operations/invoke.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from operations.invoke import main

if __name__ == "__main__":
    sys.exit(main())
