#!/usr/bin/env python3
"""Load-test a SageMaker real-time endpoint to its latency knee with Locust; report MAX_RPS and the target (the
command's code: loadgen/loadtest.py)."""

if __name__ == "__main__":
    # Locust runs on gevent, which must patch socket and ssl before boto3 and urllib3 load.
    from gevent import monkey

    monkey.patch_all()

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loadgen.loadtest import run_as_program

if __name__ == "__main__":
    run_as_program()
