"""Render broker_config/mosquitto.conf for a lab run, and start Mosquitto from it."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ecgcore.credentials import SecretsDir
from lab.errors import BrokerError
from lab.stack.ports import wait_port

CONFIG_TEMPLATE = Path(
    os.environ.get(
        "ECGPIPE_BROKER_CONFIG",
        Path(__file__).resolve().parents[2] / "broker_config" / "mosquitto.conf",
    )
)


SECURITY_WORDS = ("cafile", "certfile", "keyfile", "require_certificate", "tls_version",
                  "password_file", "acl_file")
TLS_WORDS = SECURITY_WORDS[:5]


@dataclass(frozen=True)
class BrokerSecurity:
    """The provisioned files (ecgcore.credentials.SecretsDir): passwords and ACL, and TLS
    unless tls is False (authenticated plaintext, for looking at the traffic)."""

    secrets_dir: Path
    tls: bool = True

    def overrides(self) -> dict[str, str]:
        sd = SecretsDir(self.secrets_dir)
        out = {"password_file": f"password_file {sd.passwd_file}", "acl_file": f"acl_file {sd.acl_file}",
               "allow_anonymous": "allow_anonymous false"}
        if self.tls:
            out |= {"cafile": f"cafile {sd.ca_cert}", "certfile": f"certfile {sd.tls_dir / 'broker.pem'}",
                    "keyfile": f"keyfile {sd.tls_dir / 'broker.key'}"}
        return out


@dataclass(frozen=True)
class BrokerSettings:
    port: int
    data_dir: Path
    log_file: Path
    host: str = "127.0.0.1"
    max_queued: int = 1000
    persistence: bool = True
    autosave_interval: int = 2
    security: BrokerSecurity | None = None  # None: anonymous plaintext (`up --insecure`, unit tests)
    message_size_limit: int | None = None  # None: the template's (the largest legitimate reading)

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise BrokerError(f"broker port {self.port} out of range")
        if self.max_queued < 1:
            raise BrokerError(f"max_queued_messages must be at least 1, got {self.max_queued}")


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if not found:
        raise BrokerError("mosquitto is not installed: run scripts/setup (apt-get install mosquitto)")
    return found


def render_config(settings: BrokerSettings, template: Path = CONFIG_TEMPLATE) -> str:
    """The template with the lab's overrides applied; comments and other lines kept as they are."""
    overrides = {
        "listener": f"listener {settings.port} {settings.host}",
        "persistence": f"persistence {'true' if settings.persistence else 'false'}",
        "persistence_location": f"persistence_location {settings.data_dir}/",
        "autosave_interval": f"autosave_interval {settings.autosave_interval}",
        "max_queued_messages": f"max_queued_messages {settings.max_queued}",
        "log_dest": f"log_dest file {settings.log_file}",
    }
    if settings.message_size_limit is not None:  # e.g. to let an oversize payload reach ingest
        overrides["message_size_limit"] = f"message_size_limit {settings.message_size_limit}"
    sec = settings.security
    if sec is None:
        dropped = set(SECURITY_WORDS)
        overrides["allow_anonymous"] = "allow_anonymous true"
    else:
        dropped = set() if sec.tls else set(TLS_WORDS)
        overrides |= sec.overrides()
    out: list[str] = []
    for line in template.read_text().splitlines():
        word = line.split(maxsplit=1)[0] if line.strip() and not line.lstrip().startswith("#") else ""
        if word in dropped:
            out.append(f"# (not in this run: {line})")
        else:
            out.append(overrides.get(word, line))
    # Mosquitto started as root drops to user "mosquitto", which cannot write our state dir.
    out.append("")
    out.append("# Added by the lab: run as the invoking user so the state dir stays writable.")
    out.append(f"user {getpass.getuser()}")
    return "\n".join(out) + "\n"


def write_config(settings: BrokerSettings, path: Path) -> Path:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.log_file.parent.mkdir(parents=True, exist_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_config(settings))
    return path


def broker_argv(config_path: Path) -> list[str]:
    return [mosquitto_binary(), "-c", str(config_path)]


class RunningBroker:
    """A Mosquitto child process, for tests and benchmarks (the CLI uses lab.stack.procs)."""

    def __init__(self, settings: BrokerSettings, config_path: Path) -> None:
        self.settings = settings
        self.config_path = write_config(settings, config_path)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return self.settings.host

    @property
    def port(self) -> int:
        return self.settings.port

    def start(self, deadline_s: float = 10.0) -> RunningBroker:
        self.proc = subprocess.Popen(
            broker_argv(self.config_path),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        proc = self.proc
        if not wait_port(self.host, self.port, deadline_s, alive=lambda: proc.poll() is None):
            err = b""
            if proc.poll() is not None and proc.stderr:
                err = proc.stderr.read()
            self.stop()
            raise BrokerError(f"mosquitto did not start on port {self.port}: "
                              f"{err.decode(errors='replace').strip()}")
        return self

    def signal(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def kill(self) -> None:
        """kill -9: no persistence save. start() may be called again afterwards."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None
