"""The checker: small pure checkers over a run's history, composed into one result, and the
expectation language of verdicts.

Start at lab/checker/compose.py: check() and the map of the modules it composes.
"""

from lab.checker.compose import check
from lab.checker.expect import (
    METRICS,
    WINDOW_ID,
    Expectation,
    ExpectationError,
    parse_expectation,
    verdict,
)
from lab.checker.index import infer_delivery
from lab.checker.measures import quantiles
from lab.checker.result import (
    CAUSES,
    CRASH,
    LOST_SESSION,
    OUTCOMES,
    OVERFLOW,
    QOS0,
    RESTART,
    SNAPSHOT,
    UNEXPLAINED,
    Backlog,
    CheckResult,
    Counts,
    Loss,
    Quantiles,
    ReadingOutcome,
    WindowReport,
    seq_ranges,
)

__all__ = [
    "CAUSES",
    "CRASH",
    "LOST_SESSION",
    "METRICS",
    "OUTCOMES",
    "OVERFLOW",
    "QOS0",
    "RESTART",
    "SNAPSHOT",
    "UNEXPLAINED",
    "WINDOW_ID",
    "Backlog",
    "CheckResult",
    "Counts",
    "Expectation",
    "ExpectationError",
    "Loss",
    "Quantiles",
    "ReadingOutcome",
    "WindowReport",
    "check",
    "infer_delivery",
    "parse_expectation",
    "quantiles",
    "seq_ranges",
    "verdict",
]
