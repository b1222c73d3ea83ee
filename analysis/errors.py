"""Exceptions of the analysis package.

    AnalysisError               every analysis failure; a command reports it as one line
    ├── ConfigError             a bad argument or setting
    ├── FeedError               the ingest store could not be read (translated from ingest's StoreError)
    └── StoreError              analysis/analysis.sqlite: cannot open, damaged, wrong schema, write failed

A missing analysis.sqlite is not an error for the read API: it reads as empty.
"""


class AnalysisError(Exception):
    """Base of every error raised by the analysis package."""


class ConfigError(AnalysisError):
    pass


class FeedError(AnalysisError):
    pass


class StoreError(AnalysisError):
    pass
