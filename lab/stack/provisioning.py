"""A secure stack's identities, made for whatever `up` needs and is not provisioned yet."""

from __future__ import annotations

from collections.abc import Callable

from ecgcore.credentials import CredentialsError, SecretsDir
from ecgcore.secrets import SecretFileError, read_master_key
from lab.errors import StateDirError
from lab.provision.provision import is_provisioned, provision
from lab.stack.statedir import StackConfig, StateDir

Progress = Callable[[str], None]


def _quiet(msg: str) -> None:
    pass


def device_ids(prefix: str, n: int) -> list[str]:
    """A fleet's device ids (devices.fleet.FleetConfig.device_ids): PREFIX-0000 ..."""
    return [f"{prefix}-{i:04d}" for i in range(n)]


def ensure_provisioned(sd: StateDir, cfg: StackConfig, progress: Progress = _quiet) -> None:
    """A secure stack's identities, made for whatever is not provisioned yet (`ecgpipe
    provision` does the same on its own); damaged secrets stop `up` before anything starts."""
    if not cfg.secure:
        return
    ids = device_ids(cfg.id_prefix, cfg.devices)
    try:
        if sd.ack_key_file.exists():
            read_master_key(sd.ack_key_file)
        if is_provisioned(sd.secrets_dir, ids, tls=cfg.tls):
            SecretsDir(sd.secrets_dir).client("ingest", tls=cfg.tls)  # readable and whole
            return
        progress(provision(sd.secrets_dir, ids, tls=cfg.tls).summary())
    except (SecretFileError, CredentialsError, OSError) as exc:
        raise StateDirError(f"{exc}; delete it to have a new one made, or use --insecure") from exc
