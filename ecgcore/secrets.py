"""The stack's master secret: DIR/secrets/ack.key, 32 random bytes as 64 hex digits.

    ensure_master_key(path) -> bytes    create it (mode 0600, its folder 0700) unless it exists
    read_master_key(path) -> bytes      SecretFileError when missing, unreadable or malformed

Ingest signs each device's end-to-end acks with a key derived from it (wire.acks.ack_key), and
the fleet checks them with the same derivation. The secret is never printed or logged; only
its path travels on command lines.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

KEY_BYTES = 32


class SecretFileError(Exception):
    """The secret file cannot be used; the message names the file and why (never its content)."""


def read_master_key(path: Path) -> bytes:
    try:
        text = Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretFileError(f"{path}: cannot read the ack key: {type(exc).__name__}") from exc
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise SecretFileError(f"{path}: not an ack key ({KEY_BYTES * 2} hex digits expected)")
    return key


def ensure_master_key(path: Path) -> bytes:
    """The key in `path`, made first if the file does not exist (atomically, 0600)."""
    path = Path(path)
    if path.exists():
        return read_master_key(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    key = secrets.token_bytes(KEY_BYTES)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key.hex() + "\n")
    tmp.replace(path)
    return key


def main(argv: list[str] | None = None) -> int:
    """`python -m ecgcore.secrets FILE`: make the master secret unless it exists (containers)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m ecgcore.secrets FILE", file=sys.stderr)
        return 2
    try:
        ensure_master_key(Path(args[0]))
    except (SecretFileError, OSError) as exc:
        print(f"ecgcore.secrets: error: {exc}", file=sys.stderr)
        return 1
    print(f"ack key ready in {args[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
