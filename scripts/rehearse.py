#!/usr/bin/env python3
"""Local deploy rehearsal: the real ``cdk bootstrap`` and ``cdk deploy`` of one stage, against moto on 127.0.0.1 (the
command's code: devtools/rehearse.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devtools.rehearse import main

if __name__ == "__main__":
    sys.exit(main())
