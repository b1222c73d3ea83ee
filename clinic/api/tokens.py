"""The API's users and their bearer tokens: one file per user in DIR/secrets/api/.

Layout: `DIR/secrets/api/` (mode 0700) holds `<user>.token` (mode 0600), one line, the user's
token (43 URL-safe characters, 256 random bits). The file is the user's to read (`cat` it into
an `Authorization: Bearer ...` header); nothing of ecgpipe prints or logs a token, only where
its file is.

The server keeps no token, only each one's SHA-256 (`TokenBook`), re-read when the folder
changes (so `ecgpipe serve --add-user NAME` works while a server runs), and compares a
presented token's hash with every user's by `hmac.compare_digest`: the time a check takes
does not depend on how much of a token was right, nor on which user it matched.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
from pathlib import Path

from clinic.errors import BadRequestError, ClinicError

DEFAULT_USER = "clinician"
_USER = re.compile(r"[a-z][a-z0-9_.-]{0,31}")
_SUFFIX = ".token"


def token_dir(state_root: Path) -> Path:
    return state_root / "secrets" / "api"


def token_file(state_root: Path, user: str) -> Path:
    return token_dir(state_root) / f"{check_user(user)}{_SUFFIX}"


def check_user(user: str) -> str:
    """A user name: a lower-case letter, then up to 31 of a-z 0-9 _ . - (it names a file)."""
    if not _USER.fullmatch(user):
        raise BadRequestError(f"user name {user!r}: use a lower-case letter, then up to 31 of "
                              f"a-z, 0-9, '_', '.', '-'")
    return user


def ensure_user(state_root: Path, user: str) -> tuple[Path, bool]:
    """The user's token file, made (with a new token) if it is not there; and whether it was
    made now. The folder is made 0700 and the file 0600, created exclusively."""
    path = token_file(state_root, user)
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder.chmod(0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path, False
    except OSError as exc:
        raise ClinicError(f"cannot make the token file {path}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(32) + "\n")
    return path, True


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def read_digests(folder: Path) -> dict[str, bytes]:
    """user → SHA-256 of their token, for every readable `<user>.token` in the folder (a
    missing folder: no users). Empty or unreadable files give no user."""
    found: dict[str, bytes] = {}
    try:
        paths = sorted(folder.glob(f"*{_SUFFIX}"))
    except OSError:
        return found
    for path in paths:
        user = path.name.removesuffix(_SUFFIX)
        try:
            token = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if _USER.fullmatch(user) and token:
            found[user] = _digest(token)
    return found


class TokenBook:
    """The users a server accepts: token hashes, re-read when the folder's listing or a file
    in it changes (its mtime_ns and the files' sizes and mtimes)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._stamp: object = None
        self._digests: dict[str, bytes] = {}

    def _current_stamp(self) -> object:
        try:
            entries = sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size)
                             for p in self.folder.glob(f"*{_SUFFIX}"))
            return (self.folder.stat().st_mtime_ns, tuple(entries))
        except OSError:
            return None

    def digests(self) -> dict[str, bytes]:
        stamp = self._current_stamp()
        with self._lock:
            if stamp != self._stamp or stamp is None:
                self._digests = read_digests(self.folder)
                self._stamp = stamp
            return dict(self._digests)

    def user_of(self, token: str) -> str | None:
        """The user whose token this is, or None. Every user's hash is compared."""
        given = _digest(token)
        match: str | None = None
        for user, digest in self.digests().items():
            if hmac.compare_digest(given, digest) and match is None:
                match = user
        return match
