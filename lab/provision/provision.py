"""`ecgpipe provision`: credentials for every device and service, made once and kept.

    provision(secrets_dir, device_ids, tls=True) -> Provisioned

For each device: an MQTT password, a 32-byte secret its readings' and acks' keys derive from
(wire.reading_key, wire.ack_key), and with TLS a client certificate; for each service
(ingest, the $SYS watcher, the `tail` observer): a password and a certificate. Then the
broker's files are written again from all identities: the hashed password file and the ACL.
What exists is kept (a device keeps its identity across runs); what is missing is added.
Layout: ecgcore.credentials. Secrets are never printed: the result holds counts and paths.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ecgcore.credentials import ROOT_BYTES, CredentialsError, SecretsDir
from ecgcore.secrets import ensure_master_key
from lab.errors import ConfigError
from lab.provision.broker_files import SERVICES, write_acl, write_passwd
from lab.provision.files import private_dir, write_private
from lab.provision.nats_users import render_users
from lab.provision.pki import ensure_ca
from wire.reading import DEVICE_ID_RE

SERVICE_NAMES = tuple(SERVICES)


@dataclass(frozen=True)
class Provisioned:
    secrets_dir: Path
    devices: int  # provisioned devices in all
    added: int  # identities made by this call (devices and services)
    tls: bool
    made_ca: bool

    def summary(self) -> str:
        tls = "TLS certificates from the development CA" + (" (made now)" if self.made_ca else "")
        return (f"provisioned {self.devices} devices and {len(SERVICE_NAMES)} services "
                f"({self.added} new) in {self.secrets_dir}: passwords, device secrets"
                + (f", {tls}" if self.tls else "") + "; broker password file and ACL written")


def _check_ids(device_ids: Sequence[str]) -> None:
    for dev in device_ids:
        if not DEVICE_ID_RE.match(dev):
            raise ConfigError(f"device id {dev!r} must be letters, digits, _ or - (1 to 64)")
        if dev in SERVICE_NAMES:
            raise ConfigError(f"device id {dev!r} is a service's name")


def _new_identity(sd: SecretsDir, name: str, role: str) -> None:
    doc: dict[str, object] = {"name": name, "role": role, "password": secrets.token_urlsafe(24),
                              "created_at": time.time()}
    if role == "device":
        doc["root"] = secrets.token_bytes(ROOT_BYTES).hex()
    write_private(sd.identity_file(name), json.dumps(doc).encode())


def provision(root: Path, device_ids: Sequence[str], *, tls: bool = True) -> Provisioned:
    _check_ids(device_ids)
    sd = SecretsDir(root)
    private_dir(sd.root)
    private_dir(sd.identities)
    ensure_master_key(sd.master_key_file)
    added = 0
    wanted = [*((s, s) for s in SERVICE_NAMES), *((d, "device") for d in device_ids)]
    for name, role in wanted:
        if not sd.identity_file(name).is_file():
            _new_identity(sd, name, role)
            added += 1
    try:
        everyone = {p.stem: sd.client(p.stem, tls=False) for p in sorted(sd.identities.glob("*.json"))}
    except CredentialsError as exc:
        raise ConfigError(f"{exc}; delete it to have it made again") from exc
    made_ca = False
    if tls or sd.has_tls():  # once a stack has TLS, new identities get certificates too
        private_dir(sd.tls_dir)
        ca, made_ca = ensure_ca(sd.tls_dir)
        if made_ca or not (sd.tls_dir / "broker.pem").is_file():
            ca.issue("broker", sd.tls_dir / "broker.pem", sd.tls_dir / "broker.key", server=True)
        nodes = sd.cluster_tls()
        if made_ca or not nodes.cert.is_file():
            ca.issue("nats-node", nodes.cert, nodes.key, server=True, client_too=True)
        for name in everyone:
            files = sd.client_tls(name)
            if made_ca or not files.cert.is_file():
                ca.issue(name, files.cert, files.key)
    private_dir(sd.broker_dir)
    write_passwd(sd.passwd_file, ((c.username, c.password) for c in everyone.values()))
    devices = sorted(n for n, c in everyone.items() if c.role == "device")
    write_acl(sd.acl_file, devices, SERVICE_NAMES)
    write_private(sd.nats_users_file, render_users(
        (c.name, c.role, c.password) for c in everyone.values()).encode())
    return Provisioned(sd.root, len(devices), added, tls or sd.has_tls(), made_ca)


def is_provisioned(root: Path, device_ids: Sequence[str], *, tls: bool = True) -> bool:
    """Every identity `device_ids` and the services need is there (and TLS, if wanted)."""
    sd = SecretsDir(root)
    names = (*SERVICE_NAMES, *device_ids)
    return (sd.passwd_file.is_file() and sd.acl_file.is_file() and sd.master_key_file.is_file()
            and sd.nats_users_file.is_file()
            and (not tls or (sd.has_tls() and sd.cluster_tls().cert.is_file()))
            and all(sd.identity_file(n).is_file() for n in names)
            and (not sd.has_tls() or all(sd.client_tls(n).cert.is_file() for n in names)))
