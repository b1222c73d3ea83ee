"""What a secure ingest service holds: its login, the stack's master secret, every device's keys.

    IngestSecrets.load(secrets_dir, tls)   from DIR/secrets (ecgcore.credentials)
    .readings                            device id -> its reading key (validate's `keys`)
    .ack_key(device_id)                  the key its end-to-end acks are signed with
    .status_key                          signs ingest's retained status and Last Will

Device keys derive from each device's provisioned secret (wire.reading_key, wire.ack_key) and
are loaded when first needed, so a device provisioned while ingest runs is known at its first
reading; an id nobody provisioned is looked up again at most every RELOOK_S seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ecgcore.credentials import ClientCredentials, CredentialsError, SecretsDir
from ecgcore.secrets import SecretFileError, read_master_key
from ingest.errors import ConfigError
from wire import ack_key, status_key
from wire.signing import reading_key

RELOOK_S = 10.0


class DeviceKeys(Mapping[str, bytes]):
    """Device id -> reading key, filled from the provisioned identities as ids show up."""

    def __init__(self, secrets: SecretsDir, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._secrets = secrets
        self._roots: dict[str, bytes] = {}
        self._readings: dict[str, bytes] = {}
        self._acks: dict[str, bytes] = {}
        self._missing: dict[str, float] = {}  # id -> when it was last looked up in vain
        self._monotonic = monotonic
        for dev, root in secrets.device_roots().items():
            self._add(dev, root)

    def _add(self, device_id: str, root: bytes) -> None:
        self._roots[device_id] = root
        self._readings[device_id] = reading_key(root, device_id)
        self._acks[device_id] = ack_key(root, device_id)

    def _lookup(self, device_id: str) -> bool:
        if device_id in self._readings:
            return True
        now = self._monotonic()
        if now - self._missing.get(device_id, -RELOOK_S) < RELOOK_S:
            return False
        try:
            self._add(device_id, self._secrets.device_root(device_id))
        except CredentialsError:
            self._missing[device_id] = now
            return False
        self._missing.pop(device_id, None)
        return True

    def __getitem__(self, device_id: str) -> bytes:
        if not self._lookup(device_id):
            raise KeyError(device_id)
        return self._readings[device_id]

    def __contains__(self, device_id: object) -> bool:
        return isinstance(device_id, str) and self._lookup(device_id)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._readings))

    def __len__(self) -> int:
        return len(self._readings)

    def ack_key(self, device_id: str) -> bytes | None:
        return self._acks[device_id] if self._lookup(device_id) else None


@dataclass(frozen=True)
class IngestSecrets:
    credentials: ClientCredentials
    status_key: bytes = field(repr=False)
    readings: DeviceKeys = field(repr=False)

    @classmethod
    def load(cls, secrets_dir: Path, *, tls: bool, name: str = "ingest") -> IngestSecrets:
        sd = SecretsDir(secrets_dir)
        try:
            creds = sd.client(name, tls=tls)
            master = read_master_key(sd.master_key_file)
            return cls(creds, status_key(master), DeviceKeys(sd))
        except (CredentialsError, SecretFileError) as exc:
            raise ConfigError(str(exc)) from exc

    def ack_key(self, device_id: str) -> bytes | None:
        return self.readings.ack_key(device_id)
