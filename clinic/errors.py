"""The clinic package's one exception hierarchy."""

from __future__ import annotations


class ClinicError(Exception):
    """Anything the clinic side cannot do for a reason the user can fix (one clear line)."""


class NoDataError(ClinicError):
    """Nothing stored for what was asked (a device, a time range)."""


class BadRequestError(ClinicError):
    """A value the user gave that cannot be used (a time, a format, a path)."""
