"""How many samples a CloudWatch percentile needs before it is a percentile, and what window holds them.

CloudWatch's own rule ("Percentile-based alarms and low data samples",
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/percentiles-with-low-samples.html): for a
percentile p from 0.5 (inclusive) to 1 (exclusive) a period with fewer than 10/(1-p) data points is low-sample,
and for p below 0.5 fewer than 10/p. A p99 needs 1,000 samples; on 20 it is the maximum. By default CloudWatch
still evaluates a low-sample period; ``EvaluateLowSampleCountPercentile: ignore`` leaves the alarm's state as it is.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

# "p99", "p99.9", "p50": the percentile statistics the kit uses.
_PERCENTILE = re.compile(r"p(\d{1,2}(?:\.\d+)?)")
# An alarm's period is at most a day for periods under an hour, and Period x EvaluationPeriods at most 7 days
# (botocore's PutMetricAlarm documentation); the kit keeps its windows within a day.
MAX_WINDOW_MINUTES = 1440


def percentile_share(statistic: str) -> Fraction:
    """p99 -> 99/100, exactly; ValueError for anything that is not a percentile statistic."""
    match = _PERCENTILE.fullmatch(statistic)
    if match is None or not 0 < Fraction(match[1]) < 100:
        raise ValueError(f"statistic={statistic!r} is not a percentile such as 'p99'")
    return Fraction(match[1]) / 100


def min_samples(statistic: str) -> int:
    """The fewest data points in a period for which CloudWatch does not call the percentile low-sample."""
    share = percentile_share(statistic)
    return math.ceil(10 / (1 - share)) if share >= Fraction(1, 2) else math.ceil(10 / share)


def window_minutes(calls_per_run: int, schedule_minutes: int, statistic: str) -> int:
    """The shortest whole number of runs, in minutes, in which a probe sending ``calls_per_run`` calls every
    ``schedule_minutes`` gathers ``min_samples(statistic)``."""
    runs = math.ceil(min_samples(statistic) / calls_per_run)
    return runs * schedule_minutes
