"""`ecgpipe export`: its arguments, and the handler that runs clinic.export on a state dir's store.

It reads the store the state dir names (SQLite, or PostgreSQL through ingest/store.json) in one
snapshot, so it works while the stack runs and after `ecgpipe down`. The patient behind the
device (fleet/profiles.json) goes into the FHIR Patient when the file is there.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from clinic.errors import ClinicError
from clinic.export.run import FORMATS, check_request, export
from clinic.export.times import parse_time
from clinic.export.wfdb_out import ANN_EXT, record_path
from devices.profiles_file import read_profiles
from ingest.pg_read import locator_dsn
from lab.cli.output import emit, state_dir
from lab.errors import UsageError

if TYPE_CHECKING:
    from lab.cli.parser import OneLineParser, Subparsers

GAPS_SHOWN = 10

OUT_HELP = ("wfdb: the record path without extension (PATH.hea, PATH.dat, PATH.ann); edf: the .edf "
            "file; fhir: the Bundle's .json file; csv: the .csv file. Its directory must exist")


def time_arg(text: str) -> float:
    """An argparse type: ISO 8601 (UTC when no zone) or Unix seconds; one clear line otherwise."""
    try:
        return parse_time(text)
    except ClinicError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(sub: Subparsers, common: OneLineParser) -> None:
    from lab.cli.parser import command

    ex = command(sub, "export",
                 "write a device's stored readings as WFDB, EDF+, FHIR R4 or CSV, with the gaps of "
                 "an outage shown, never joined (docs/exports.md)",
                 "ecgpipe export --device hc-0003 --format wfdb --out hc0003\n"
                 "ecgpipe export --device hc-0003 --from 2026-12-01T15:00Z --to 2026-12-01T16:00Z "
                 "--format edf --out hc0003.edf\n"
                 "ecgpipe export --device hc-0003 --format fhir --out hc0003.json --json", (common,))
    ex.add_argument("--device", required=True, metavar="ID", help="the device whose readings to export")
    ex.add_argument("--from", dest="start", type=time_arg, default=None, metavar="T",
                    help="first capture time: ISO 8601 (UTC when no zone) or Unix seconds "
                         "(default: the device's first reading)")
    ex.add_argument("--to", dest="end", type=time_arg, default=None, metavar="T",
                    help="capture times before this one (same forms; default: the newest reading)")
    ex.add_argument("--format", dest="fmt", required=True, choices=FORMATS, help="the format written")
    ex.add_argument("--out", required=True, metavar="PATH", help=OUT_HELP)
    ex.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    try:  # a bad --out or range is bad usage (2), before any store is read
        check_request(args.fmt, args.out, args.start, args.end)
    except ClinicError as exc:
        raise UsageError(str(exc)) from None
    sd = state_dir(args)
    db = sd.ingest_db
    if not db.exists() and locator_dsn(db) is None:
        raise ClinicError(f"no ingest store in {sd.root} ({db} is missing): give the stack's "
                          "--state-dir, or start one with `ecgpipe up`")
    profiles = read_profiles(sd.root / "fleet") or {}
    doc = export(db, args.device, args.fmt, args.out, start=args.start, end=args.end,
                 profile=profiles.get(args.device))
    emit(doc, args.json, text)
    return 0


def text(doc: dict[str, Any]) -> str:
    """The summary for people: what was exported, its gaps, and the files."""
    head = (f"exported {doc['device_id']} as {doc['format'].upper()}: {doc['readings']:,} readings, "
            f"{doc['samples']:,} samples, {doc['duration_s']:.3f} s from {doc['first_sample_utc']}"
            f" ({doc['sample_rate_hz']} Hz, {doc['gain_uv']} uV per count)")
    lines = [head]
    gaps = doc["gaps"]
    lines.append(f"{len(gaps)} gap{'s' * (len(gaps) != 1)} ({doc['gap_total_s']:.3f} s in all)"
                 + (":" if gaps else ""))
    lines += [f"  {g['start_utc']}  {g['duration_s']:.3f} s" for g in gaps[:GAPS_SHOWN]]
    if len(gaps) > GAPS_SHOWN:
        lines.append(f"  ... and {len(gaps) - GAPS_SHOWN} more (--json lists them all)")
    cut, lead = len(doc["overlaps"]), len(doc["lead_off"])
    lines.append(f"{cut} overlapping reading{'s' * (cut != 1)} cut (the first placed wins), "
                 f"{lead} lead-off span{'s' * (lead != 1)}")
    if doc["truncated"]:
        lines.append(f"only the first {doc['max_readings']:,} readings of the range: export the rest "
                     f"with --from {doc['end']:.6f}")
    lines.append("wrote " + ", ".join(doc["files"]))
    if doc["format"] == "wfdb":
        rec = record_path(doc["files"][0])
        lines.append(f"read it with wfdb.rdrecord('{rec}') and wfdb.rdann('{rec}', '{ANN_EXT}')")
    return "\n".join(lines)
