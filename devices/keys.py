"""What each simulated device holds in a secure stack, read once from the provisioned secrets.

    FleetKeys.load(secrets_dir, device_ids, tls)   None secrets_dir: an insecure fleet
    .credentials(device_id)  its MQTT login and certificate (None: anonymous)
    .reading_key(device_id)  signs its readings (wire.reading_key of its secret)
    .ack_key(device_id)      the key ingest's acks to it must carry (None: any ack is believed)
    .status_key              the key ingest's retained status must carry (None: any)

A real device holds only its own secret; the fleet process simulates many, so it reads each
device's identity file (DIR/secrets/identities/<id>.json) and keeps the keys apart by id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devices.errors import ConfigError
from ecgcore.credentials import ClientCredentials, CredentialsError, SecretsDir
from ecgcore.secrets import SecretFileError, read_master_key
from wire import ack_key, status_key
from wire.signing import reading_key


@dataclass(frozen=True)
class _DeviceKeys:
    credentials: ClientCredentials
    reading: bytes = field(repr=False)
    ack: bytes = field(repr=False)


@dataclass(frozen=True)
class FleetKeys:
    devices: dict[str, _DeviceKeys] = field(default_factory=dict, repr=False)
    status_key: bytes | None = field(default=None, repr=False)

    @classmethod
    def load(cls, secrets_dir: Path | None, device_ids: Sequence[str], *, tls: bool) -> FleetKeys:
        if secrets_dir is None:
            return cls()
        sd = SecretsDir(secrets_dir)
        try:
            status = status_key(read_master_key(sd.master_key_file))
            devices = {}
            for dev in device_ids:
                root = sd.device_root(dev)
                devices[dev] = _DeviceKeys(sd.client(dev, tls=tls), reading_key(root, dev),
                                           ack_key(root, dev))
        except (CredentialsError, SecretFileError) as exc:
            raise ConfigError(str(exc)) from exc
        return cls(devices, status)

    def credentials(self, device_id: str) -> ClientCredentials | None:
        keys = self.devices.get(device_id)
        return None if keys is None else keys.credentials

    def reading_key(self, device_id: str) -> bytes | None:
        keys = self.devices.get(device_id)
        return None if keys is None else keys.reading

    def ack_key(self, device_id: str) -> bytes | None:
        keys = self.devices.get(device_id)
        return None if keys is None else keys.ack
