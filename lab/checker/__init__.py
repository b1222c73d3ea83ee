"""The checker: small pure checkers over a run's history, composed into one result, and the expectation language of verdicts."""
