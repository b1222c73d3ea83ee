"""An attacker on a running stack: forged, garbled and replayed messages, sent as an identity whose
login and certificate were stolen, or as nobody. The only paho import of lab/nemesis.

    python -m lab.nemesis.attacker --state-dir DIR KIND [--as ID|anonymous] [--victim ID]
                                   [--rate N] [--count N] [--seconds S]

KINDS (what each sends, QoS 1):
    forge-other    readings for the victim on the victim's topic, signed with a made-up key, seqs
                   just ahead of what the victim has stored (so a stored forgery would take the
                   key of a genuine reading still to come)
    wrong-key      the same for the identity itself, on its own topic
    garbage        random bytes and damaged readings on the identity's own topic (with --size N:
                   random payloads of N bytes each, e.g. just under the broker's size limit)
    forged-acks    an ack naming every seq to every device's ack topic, unsigned or made-up-signed
    forged-status  a retained "offline" for the ingest service (the devices would hold everything)
    replay         readings the victim sent, again, byte for byte (as captured traffic would be)

The attacker has what a thief of one device has: its login and certificate (not its signing
key, which stays in the device), the CA's certificate (public), and the victim's recent seqs
and boot epoch (not secret). In an `--insecure` stack it connects anonymously. It ends with one
JSON line: whether the broker let it in, what it sent, and what the broker refused (by the
PUBACK's reason; MQTT 5).
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ecgcore.clock import make_clock
from ecgcore.credentials import ClientCredentials, CredentialsError, SecretsDir, client_tls_context
from ecgcore.files import read_json
from ecgcore.strict_warnings import apply_from_env
from ingest import store_view
from lab.errors import LabError
from lab.stack.statedir import StateDir
from wire import INGEST_STATUS_TOPIC, Reading, ack_topic, encode_ack, encode_reading, encode_service_status
from wire.signing import reading_key
from wire.topics import ecg_topic

ATTACKS = ("forge-other", "wrong-key", "garbage", "forged-acks", "forged-status", "replay")
ANONYMOUS = "anonymous"
Message = tuple[str, bytes, bool]  # topic, payload, retain


class Link:
    """One paho client on its own thread; counts PUBACKs by reason."""

    def __init__(self, host: str, port: int, creds: ClientCredentials | None) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"attacker-{secrets.token_hex(4)}",
                                  protocol=mqtt.MQTTv5, reconnect_on_failure=False)
        if creds is not None:
            self.client.username_pw_set(creds.username, creds.password)
            if creds.tls is not None:
                self.client.tls_set_context(client_tls_context(creds.tls))
        self.pubacks: Counter[str] = Counter()
        self.connack: str | None = None
        self.done = threading.Event()
        self._connected = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.host, self.port = host, port

    def _on_connect(self, _c: mqtt.Client, _u: object, _f: object, rc: object, _p: object = None) -> None:
        self.connack = str(rc)
        self._connected.set()

    def _on_publish(self, _c: mqtt.Client, _u: object, _mid: int, rc: object, _p: object = None) -> None:
        self.pubacks[str(rc)] += 1

    def connect(self, timeout_s: float = 10.0) -> bool:
        try:
            self.client.connect(self.host, self.port, keepalive=30)
        except OSError as exc:  # refused, reset, or a TLS handshake the broker would not finish
            self.connack = f"{type(exc).__name__}: {exc}"
            return False
        self.client.loop_start()
        if not self._connected.wait(timeout_s):
            self.connack = self.connack or "no CONNACK"
        return self.connack == "Success"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _reading(device: str, boot: int, seq: int, at: float, key: bytes | None,
             rng: np.random.Generator) -> bytes:
    samples = (rng.normal(0, 200, 250)).astype(np.int16)
    return encode_reading(Reading(device, boot, seq, at, 250, 1.0, samples), key=key)


class Attack:
    def __init__(self, sd: StateDir, kind: str, identity: str, victim: str, seed: int,
                 size: int | None = None) -> None:
        self.sd, self.kind, self.identity, self.victim = sd, kind, identity, victim
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.clock = make_clock(sd.config().speed)
        self.made_up = secrets.token_bytes(32)  # the attacker's key: not any device's

    def _next_seq(self, device: str) -> tuple[int, int]:
        """(boot epoch, the seq after the newest stored) of `device`: what it sends next."""
        doc = read_json(self.sd.devices_json) or {}
        boot = int(doc.get("devices", {}).get(device, {}).get("boot_epoch", 1))
        rows = [r for r in store_view.stored_readings(self.sd.ingest_db) if r.device_id == device] \
            if self.sd.ingest_db.exists() or (self.sd.ingest_db.parent / "store.json").exists() else []
        return boot, max((r.seq for r in rows), default=-1) + 1

    def messages(self) -> Iterator[Message]:
        return {"forge-other": self._forge, "wrong-key": self._forge, "garbage": self._garbage,
                "forged-acks": self._acks, "forged-status": self._status, "replay": self._replay}[self.kind]()

    def _forge(self) -> Iterator[Message]:
        target = self.victim if self.kind == "forge-other" else self.identity
        boot, seq = self._next_seq(target)
        while True:
            at = self.clock.now()
            yield ecg_topic(target), _reading(target, boot, seq, at, self.made_up, self.rng), False
            seq += 1

    def _garbage(self) -> Iterator[Message]:
        if self.size is not None:
            while True:
                yield ecg_topic(self.identity), self.rng.bytes(self.size), False
        boot, seq = self._next_seq(self.identity)
        good = _reading(self.identity, boot, seq, self.clock.now(), self.made_up, self.rng)
        while True:
            cut = int(self.rng.integers(1, len(good)))
            yield ecg_topic(self.identity), bytes(self.rng.integers(0, 256, cut, dtype=np.uint8)), False
            yield ecg_topic(self.identity), good[:cut], False

    def _acks(self) -> Iterator[Message]:
        devices = list((read_json(self.sd.devices_json) or {}).get("devices", {})) or [self.victim]
        while True:
            for dev in devices:
                yield ack_topic(dev), encode_ack(dev, [(0, 2**31)], None), False
                yield ack_topic(dev), encode_ack(dev, [(0, 2**31)], self.made_up), False

    def _status(self) -> Iterator[Message]:
        while True:
            doc = encode_service_status("offline", "f0f0f0f0f0f0", "f0f0f0f0f0f0", True, self.clock.now())
            yield INGEST_STATUS_TOPIC, doc, True

    def _replay(self) -> Iterator[Message]:
        """What the victim sent, again: re-made with its own key, as recorded off the wire."""
        target, db = self.victim, self.sd.ingest_db
        sd = SecretsDir(self.sd.secrets_dir)
        key = reading_key(sd.device_root(target), target) if self.sd.config().secure else None
        while True:
            for row in store_view.stored_readings(db):
                got = (store_view.reading_samples(db, target, row.boot_epoch, row.seq)
                       if row.device_id == target else None)
                if got is not None:
                    yield ecg_topic(target), encode_reading(Reading(
                        target, row.boot_epoch, row.seq, row.captured_at, got.sample_rate_hz,
                        got.gain_uv, got.samples), key=key), False


def credentials(sd: StateDir, identity: str) -> ClientCredentials | None:
    """The stolen identity's login and certificate in a secure stack; None: anonymous."""
    cfg = sd.config()
    if identity == ANONYMOUS or not cfg.secure:
        return None
    return SecretsDir(sd.secrets_dir).client(identity, tls=cfg.tls)


def run(sd: StateDir, kind: str, identity: str, victim: str, *, rate: float, count: int | None,
        seconds: float | None, seed: int, stop: threading.Event,
        size: int | None = None) -> dict[str, object]:
    cfg = sd.config()
    link = Link(cfg.host, cfg.port, credentials(sd, identity))
    summary: dict[str, object] = {"attack": kind, "as": identity if cfg.secure else ANONYMOUS,
                                  "victim": victim, "sent": 0}
    if not link.connect():
        summary["connected"] = False
        summary["refused_at_connect"] = link.connack
        return summary
    summary["connected"] = True
    sent, t0 = 0, time.monotonic()
    try:
        for topic, payload, retain in Attack(sd, kind, identity, victim, seed, size).messages():
            over = seconds is not None and time.monotonic() - t0 >= seconds
            enough = count is not None and sent >= count
            if stop.is_set() or over or enough or not link.client.is_connected():
                break
            link.client.publish(topic, payload, qos=1, retain=retain)
            sent += 1
            time.sleep(max(0.0, t0 + sent / rate - time.monotonic()))
        deadline = time.monotonic() + 5
        while (sum(link.pubacks.values()) < sent and time.monotonic() < deadline
               and link.client.is_connected()):
            time.sleep(0.02)
    finally:
        link.close()
    summary["sent"] = sent
    summary["pubacks"] = dict(link.pubacks)
    return summary


def main(argv: list[str] | None = None) -> int:
    apply_from_env()
    p = argparse.ArgumentParser(prog="python -m lab.nemesis.attacker", description=__doc__.splitlines()[0])
    p.add_argument("--state-dir", required=True, type=Path)
    p.add_argument("kind", choices=ATTACKS)
    p.add_argument("--as", dest="identity", default="hc-0000", help="a provisioned identity, or anonymous")
    p.add_argument("--victim", default="hc-0001")
    p.add_argument("--rate", type=float, default=20.0, help="messages per real second")
    p.add_argument("--count", type=int, default=None)
    p.add_argument("--seconds", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=None, help="garbage: payloads of this many bytes")
    p.add_argument("--record", type=Path, default=None, help="append the summary to this JSON-lines file")
    args = p.parse_args(argv)
    if not args.rate > 0:
        p.error(f"--rate must be more than 0, got {args.rate}")
    stop = threading.Event()

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        summary = run(StateDir(args.state_dir), args.kind, args.identity, args.victim, rate=args.rate,
                      count=args.count, seconds=args.seconds, seed=args.seed, stop=stop, size=args.size)
    except (CredentialsError, LabError, OSError) as exc:
        print(f"attacker: error: {exc}", file=sys.stderr)
        return 2
    line = json.dumps(summary, sort_keys=True)
    print(line, flush=True)
    if args.record is not None:
        args.record.parent.mkdir(parents=True, exist_ok=True)
        with args.record.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
