"""What one client of the broker was provisioned with, read from DIR/secrets (`ecgpipe provision`).

    SecretsDir(root)                the layout below; nothing is read until asked
    .client(name, tls=True) -> ClientCredentials   a device's or service's MQTT username,
                                    password and, with tls, its TLS files
    .device_root(device_id)         the device's 32-byte secret (its readings' and acks' keys
                                    are derived from it: wire.reading_key, wire.ack_key)
    .device_roots()                 every provisioned device's secret (what ingest verifies with)
    client_tls_context(tls)         an ssl.SSLContext that trusts only the stack's CA, checks the
                                    broker's name, and presents the client's own certificate

Layout (folders 0700, secret files 0600; written by lab.provision):

    identities/<name>.json   {"name", "role", "password", "root"}: role device, ingest, watcher
                             or observer; "root" (hex) for devices only
    tls/ca.pem               the development CA's certificate (tls/ca.key is its key)
    tls/broker.pem|.key      the broker's certificate, for 127.0.0.1, localhost and broker
    tls/clients/<name>.pem|.key   each client's certificate, its CN the client's name
    tls/cluster.pem|.key     the NATS nodes' certificate: server and client (their routes)
    broker/passwd, broker/acl     Mosquitto's password file (hashed) and its ACL
    broker/nats-users.conf   the NATS cluster's users (bcrypt hashes) and their permissions
    ack.key                  the stack's master secret (signs ingest's retained status)

Nothing here prints or logs a secret: errors name the file and what is wrong, never content.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass, field
from pathlib import Path

ROOT_BYTES = 32
ROLES = ("device", "ingest", "watcher", "observer")


class CredentialsError(Exception):
    """A provisioned file is missing or unusable; the message says which and why."""


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class ClientCredentials:
    name: str
    role: str
    password: str = field(repr=False)
    tls: TlsFiles | None = None

    @property
    def username(self) -> str:
        return self.name


def client_tls_context(tls: TlsFiles) -> ssl.SSLContext:
    """TLS 1.2+, the stack's CA only, the broker's name checked, the client's own certificate."""
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(tls.cert), str(tls.key))
    except (OSError, ssl.SSLError) as exc:
        raise CredentialsError(f"cannot load TLS files {tls.cert.name}, {tls.key.name} or "
                               f"{tls.ca.name}: {type(exc).__name__}: {exc}") from exc
    return ctx


@dataclass(frozen=True)
class SecretsDir:
    root: Path

    @property
    def identities(self) -> Path:
        return self.root / "identities"

    @property
    def tls_dir(self) -> Path:
        return self.root / "tls"

    @property
    def ca_cert(self) -> Path:
        return self.tls_dir / "ca.pem"

    @property
    def broker_dir(self) -> Path:
        return self.root / "broker"

    @property
    def passwd_file(self) -> Path:
        return self.broker_dir / "passwd"

    @property
    def acl_file(self) -> Path:
        return self.broker_dir / "acl"

    @property
    def nats_users_file(self) -> Path:
        return self.broker_dir / "nats-users.conf"

    def cluster_tls(self) -> TlsFiles:
        return TlsFiles(self.ca_cert, self.tls_dir / "cluster.pem", self.tls_dir / "cluster.key")

    @property
    def master_key_file(self) -> Path:
        return self.root / "ack.key"

    def identity_file(self, name: str) -> Path:
        return self.identities / f"{name}.json"

    def client_tls(self, name: str) -> TlsFiles:
        d = self.tls_dir / "clients"
        return TlsFiles(self.ca_cert, d / f"{name}.pem", d / f"{name}.key")

    def has_tls(self) -> bool:
        return self.ca_cert.is_file()

    def _identity(self, name: str) -> dict[str, str]:
        path = self.identity_file(name)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise CredentialsError(f"{path}: {name!r} is not provisioned "
                                   f"(run `ecgpipe provision`)") from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CredentialsError(f"{path}: unreadable identity: {type(exc).__name__}") from exc
        if not (isinstance(doc, dict) and doc.get("name") == name and doc.get("role") in ROLES
                and isinstance(doc.get("password"), str) and doc["password"]):
            raise CredentialsError(f"{path}: not an identity of {name!r}")
        return doc

    def client(self, name: str, *, tls: bool = True) -> ClientCredentials:
        """`name`'s credentials; with tls, its certificate's files, which must exist."""
        doc = self._identity(name)
        files = None
        if tls:
            files = self.client_tls(name)
            missing = [p for p in (files.ca, files.cert, files.key) if not p.is_file()]
            if missing:
                raise CredentialsError(f"{missing[0]}: missing; TLS needs the CA and {name!r}'s "
                                       f"certificate (run `ecgpipe provision`)")
        return ClientCredentials(name, doc["role"], doc["password"], files)

    def device_root(self, device_id: str) -> bytes:
        doc = self._identity(device_id)
        return _root(doc, self.identity_file(device_id))

    def device_roots(self) -> dict[str, bytes]:
        """Every provisioned device's secret, by device id."""
        out: dict[str, bytes] = {}
        for path in sorted(self.identities.glob("*.json")):
            doc = self._identity(path.stem)
            if doc["role"] == "device":
                out[path.stem] = _root(doc, path)
        return out


def _root(doc: dict[str, str], path: Path) -> bytes:
    try:
        root = bytes.fromhex(str(doc.get("root", "")))
    except ValueError:
        root = b""
    if doc.get("role") != "device" or len(root) != ROOT_BYTES:
        raise CredentialsError(f"{path}: no device secret ({ROOT_BYTES * 2} hex digits expected)")
    return root
