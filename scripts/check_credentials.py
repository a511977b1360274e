#!/usr/bin/env python3
"""Before make diff, deploy or destroy: AWS credentials as the CDK CLI would find them, or one line saying what is
missing and how to give it (the command's code: cliutil/credentials.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cliutil.credentials import main

if __name__ == "__main__":
    sys.exit(main())
