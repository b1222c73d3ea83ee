"""The checker: small pure checkers over a run's history, composed into one result, and the expectation language of verdicts."""

from lab.checker.core import (
    CAUSES,
    CRASH,
    OVERFLOW,
    QOS0,
    RESTART,
    UNEXPLAINED,
    WINDOW_ID,
    CheckResult,
    Expectation,
    ExpectationError,
    check,
    infer_delivery,
    parse_expectation,
    quantiles,
    verdict,
)

__all__ = [
    "CAUSES", "CRASH", "OVERFLOW", "QOS0", "RESTART", "UNEXPLAINED", "WINDOW_ID", "CheckResult",
    "Expectation", "ExpectationError", "check", "infer_delivery", "parse_expectation", "quantiles",
    "verdict",
]
