"""The loaders: a run's merged history, read from a (running, stopped or copied) state dir.

Sources (docs/architecture.md, "History (for the checker)"):

    history/devices.jsonl    the fleet: boot, generated, published, broker_acked, ingest_acked, evicted
    ingest/ingest.sqlite     the ingest store, read-only: stored (readings), duplicate (duplicates),
                             quarantined (quarantine)
    history/nemesis.jsonl    the nemesis: fault_start / fault_end, paired into FaultWindow
    watch/sys.jsonl          the $SYS watcher: store/messages/count and publish/messages/dropped,
                             per broker incarnation
    fleet/outbox.sqlite      the final outbox snapshot (devices.outbox_view.ledger_sets): what is still
                             buffered, what was evicted, each device's durable next_seq
    stack.json               the delivery mode and the broker's persistence setting
    history/devices.jsonl    also the ground truth: "truth" records (lab/history/truth.py)
    analysis/analysis.sqlite the analysis stage's clinical events, read-only (analysis.store_view)
    fleet/profiles.json      the patient behind each device (devices.profiles_file)
    (and, for EC57, a sample of true and detected beats: lab/history/beats.py)

Every part is optional: a missing file gives an empty part (and a missing outbox gives
`final_buffered = None`, which tells the checker to reconstruct the outbox from events).
Malformed records (a torn last line, a record without its keys, an unknown event) are skipped
and counted in `History.skipped`; nothing here raises on bad history content.

Times are the injected clock's simulated Unix seconds. All event types are frozen, slotted
dataclasses; `History` holds tuples of them, in the order of their source (device events in
file order, stored events in store order).
"""

from __future__ import annotations

from pathlib import Path

from analysis import store_view as analysis_view
from analysis.errors import AnalysisError
from devices import outbox_view as dev_inspect
from devices.profiles_file import read_profiles
from ecgcore.files import read_json, read_jsonl
from ingest import store_view
from ingest.errors import IngestError
from lab.history.beats import load_beat_spans
from lab.history.events import Duplicate, History, Key, QuarantinedMessage, Stored
from lab.history.records import broker_samples, parse_device_events
from lab.history.truth import EVENT_KINDS, ClinicalEvent, Patient, parse_truth, patient
from lab.history.windows import pair_faults

ANALYSIS_DB = ("analysis", "analysis.sqlite")


def read_ingest(db_path: Path) -> tuple[list[Stored], list[Duplicate], list[QuarantinedMessage],
                                        dict[str, int]]:
    """Stored (in store order: stored_at, then insertion), duplicates and quarantined rows, and
    the rate limit's refusals per device (counts), from
    one snapshot through ingest's read API. A store that cannot be read gives empty parts, like
    a missing one (the history never raises on bad content)."""
    try:
        contents = store_view.store_contents(db_path)
    except IngestError:
        return [], [], [], {}
    stored = [Stored(r.stored_at, r.device_id, r.boot_epoch, r.seq, r.captured_at, r.received_at,
                     r.duration_s, r.backlog) for r in contents.stored]
    duplicates = [Duplicate(d.received_at, d.device_id, d.boot_epoch, d.seq) for d in contents.duplicates]
    quarantined = [QuarantinedMessage(q.received_at, q.topic, q.reason, q.device_id)
                   for q in contents.quarantined]
    return stored, duplicates, quarantined, contents.refused


def read_clinical_events(db_path: Path) -> list[ClinicalEvent]:
    """The analysis stage's events through its read API, in its order; a store that is missing
    or cannot be read gives none (the history never raises on bad content)."""
    try:
        events = analysis_view.events(db_path)
    except AnalysisError:
        return []
    return [ClinicalEvent(e.device_id, EVENT_KINDS.get(e.kind, e.kind), e.onset, e.raised_at, e.end,
                          dict(e.evidence or {})) for e in events]


def read_unanalysed(root: Path) -> frozenset[Key]:
    """The stored readings the analysis stage has not analysed yet (it walks the ingest store
    in rowid order up to its cursor); none when there is no analysis store or it cannot be read."""
    try:
        cursor = int(analysis_view.progress(root.joinpath(*ANALYSIS_DB))["cursor"])
        return frozenset(store_view.keys_after(root / "ingest" / "ingest.sqlite", cursor))
    except (AnalysisError, IngestError):
        return frozenset()


def read_patients(fleet_dir: Path) -> dict[str, Patient]:
    """Device id → its patient, from fleet/profiles.json (none when the file is absent)."""
    return {dev: patient(dev, entry) for dev, entry in (read_profiles(fleet_dir) or {}).items()}


def load_history(state_dir: Path, *, beats: bool = True) -> History:
    """Everything the checker needs, from a (running, stopped or copied) state dir. beats=False
    leaves out the sample of true and detected beats that EC57 scoring needs (the slow part)."""
    root = Path(state_dir)
    skipped: dict[str, int] = {}
    records = read_jsonl(root / "history" / "devices.jsonl")
    device_events, skipped["devices"] = parse_device_events(records)
    truth, skipped["truth"] = parse_truth(records)
    faults, skipped["nemesis"] = pair_faults(read_jsonl(root / "history" / "nemesis.jsonl"))
    samples, skipped["broker"] = broker_samples(read_jsonl(root / "watch" / "sys.jsonl"))
    stored, duplicates, quarantined, refused = read_ingest(root / "ingest" / "ingest.sqlite")
    final_buffered = final_evicted = final_next_seq = None
    outbox = root / "fleet" / "outbox.sqlite"
    if outbox.is_file():
        sets = dev_inspect.ledger_sets(outbox)
        final_buffered = {d: frozenset(v["buffered"]) for d, v in sets.items()}
        final_evicted = {d: dict(v["evicted"]) for d, v in sets.items()}
        final_next_seq = {d: int(v["generated"]) for d, v in sets.items()}
    patients = read_patients(root / "fleet")
    spans = load_beat_spans(root, stored, patients) if beats else []
    stack = read_json(root / "stack.json") or {}
    delivery = stack.get("delivery") if isinstance(stack, dict) else None
    persistence = stack.get("persistence") if isinstance(stack, dict) else None
    return History(
        device_events=device_events, stored=stored, duplicates=duplicates, quarantined=quarantined,
        refused=refused,
        faults=faults, broker=samples, final_buffered=final_buffered, final_evicted=final_evicted,
        final_next_seq=final_next_seq,
        delivery=delivery if isinstance(delivery, str) else None,
        broker_persistence=persistence if isinstance(persistence, bool) else None,
        skipped={k: v for k, v in skipped.items() if v},
        truth=truth, clinical_events=read_clinical_events(root.joinpath(*ANALYSIS_DB)),
        analysed=root.joinpath(*ANALYSIS_DB).exists(),
        unanalysed=read_unanalysed(root) if root.joinpath(*ANALYSIS_DB).exists() else frozenset(),
        patients=patients, beat_spans=spans,
    )
