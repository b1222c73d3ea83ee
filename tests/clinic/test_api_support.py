"""What the API tests share: a state dir built by hand with the real stores, and a client.

The state dir (`make_state`): two patients.

    hc-0001  generated 0..9; stored 0, 1, 2, 4, 5 (so a gap at 3); 3 let go of by the device and
             not stored ("sent but not stored"); 6..9 in the outbox, not stored (buffered; the
             oldest captured at T0 + 6); one clinical event (af) in the analysis store
    hc-0002  generated 0..2, all stored

Each reading is one second of 250 Hz captured at T0 + seq. No test here starts a process.
Import TestClient from here: this module silences starlette's notice that it prefers httpx2.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():  # starlette 1.10 wants httpx2, which is not among our pins; the
    # TestClient works with httpx as it is (constraints.txt), so its import-time notice is not ours
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`",
                            StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

__all__ = ["TestClient", "client_for", "make_state", "token_of"]

from analysis.merge import StoredEvent
from analysis.store import AnalysisStore
from clinic.api.app import create_app
from clinic.api.tokens import ensure_user
from devices.outbox import Outbox
from devices.profile import PatientProfile
from devices.profiles_file import profile_entry, write_profiles
from ecgcore.clock import ManualClock
from ingest.store import SqliteStore
from ingest.validate import Accepted, validate
from lab.stack.statedir import StackConfig, StateDir
from wire import Reading, encode_reading

T0 = 1_796_040_000.0  # 2026-11-30T12:00:00Z
NOW = T0 + 3 * 3600.0  # the clock the app reads: three hours after the first capture
RATE = 250
GAIN_UV = 2.5
DEV1, DEV2 = "hc-0001", "hc-0002"
PROFILE = PatientProfile(hr_bpm=70.0, hrv=2.0, noise=0.01, seed=42, cohort="elderly")


def reading(dev: str, seq: int) -> Reading:
    samples = (np.sin(np.arange(RATE) / 10.0 + seq) * 400).astype(np.int16)
    return Reading(device_id=dev, boot_epoch=1, seq=seq, captured_at=T0 + seq, sample_rate_hz=RATE,
                   gain_uv=GAIN_UV, samples=samples)


def accepted(dev: str, seq: int) -> Accepted:
    v = validate(f"heartcheck/{dev}/ecg", encode_reading(reading(dev, seq)), T0 + seq + 1.5)
    assert isinstance(v, Accepted)
    return v


def make_state(root: Path) -> StateDir:
    sd = StateDir(root)
    sd.root.mkdir(parents=True)
    sd.save_config(StackConfig(devices=2, delivery="end-to-end"))
    box = Outbox(sd.outbox_db, capacity=100)
    for dev, n in ((DEV1, 10), (DEV2, 3)):
        box.register(dev, PROFILE, T0)
        for seq in range(n):
            box.append(dev, seq, 1, T0 + seq, encode_reading(reading(dev, seq)), now=T0 + seq + 1)
    box.delete(DEV1, range(6))
    box.delete(DEV2, range(3))
    box.close()
    store = SqliteStore(sd.ingest_db)
    store.store_batch([accepted(DEV1, s) for s in (0, 1, 2, 4, 5)] + [accepted(DEV2, s) for s in range(3)],
                      [], stored_at=T0 + 8)
    store.close()
    entry = profile_entry(PROFILE, recording="continuous", sample_rate_hz=RATE, chunk_seconds=1.0,
                          strip_seconds=None, strips_per_day=None)
    write_profiles(sd.devices_json.parent, [(DEV1, entry), (DEV2, entry)], T0)
    events = AnalysisStore(sd.analysis_db)
    with events.batch():
        events.note_device(DEV1)
        events.write_event(StoredEvent(id=None, device_id=DEV1, kind="af", onset=T0 + 1, last_seen=T0 + 4,
                                       open=False, raised_at=T0 + 6, updated_at=T0 + 6,
                                       evidence={"hr_bpm": 120}), ())
    events.close()
    return sd


def token_of(sd: StateDir, user: str = "clinician") -> str:
    path, _ = ensure_user(sd.root, user)
    return path.read_text().strip()


def client_for(sd: StateDir, user: str = "clinician") -> TestClient:
    """A TestClient over the app with `user`'s token in every request."""
    app = create_app(sd, clock=ManualClock(NOW))
    return TestClient(app, headers={"Authorization": f"Bearer {token_of(sd, user)}"})
