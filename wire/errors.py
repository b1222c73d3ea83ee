"""Exceptions of the wire package.

    WireError                  every decoding or validation failure
    ├── TruncatedError         fewer bytes than the header or a length field promises
    ├── BadMagicError          not an ecgpipe reading at all
    ├── VersionError           a format version this code does not read
    ├── LengthError            trailing bytes, oversize payload, bad counts
    ├── ChecksumError          CRC-32 mismatch
    └── FieldError             a field out of its allowed range
"""


class WireError(ValueError):
    """A payload or field that does not follow the ecgpipe wire format."""

    reason = "invalid"


class TruncatedError(WireError):
    reason = "truncated"


class BadMagicError(WireError):
    reason = "bad-magic"


class VersionError(WireError):
    reason = "unsupported-version"


class LengthError(WireError):
    reason = "bad-length"


class ChecksumError(WireError):
    reason = "bad-checksum"


class FieldError(WireError):
    reason = "bad-field"


class SignatureError(WireError):
    """A message that must be signed is unsigned, or its signature does not match."""

    reason = "bad-signature"
