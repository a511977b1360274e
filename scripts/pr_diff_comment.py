#!/usr/bin/env python3
"""The pull request's `cdk diff` comment: one markdown body for every deployable stage, printed to stdout (the
command's code: devtools/pr_diff_comment.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devtools.pr_diff_comment import main

if __name__ == "__main__":
    sys.exit(main())
