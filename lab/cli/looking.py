"""Handlers of the commands that look without changing anything: inspect, report, profiles,
and the watching ones (status --watch, inspect devices --watch, logs, tail)."""

from __future__ import annotations

import argparse
import sys
from functools import partial
from typing import Any

from lab.cli.commands import status
from lab.cli.output import emit, state_dir
from lab.errors import UsageError


def profiles(args: argparse.Namespace) -> int:
    """`ecgpipe profiles`: the catalogue, rhythms then episodes."""
    from pathlib import Path

    from devices.catalogue import load_catalogue
    from devices.errors import ProfileError

    try:
        cat = load_catalogue(Path(args.file) if args.file else None)
    except ProfileError as exc:
        raise UsageError(str(exc)) from None
    rows = [{"name": e.name, "episode": e.episode, "kind": e.kind, "hr_bpm": e.hr,
             "duration_s": e.duration_s, "description": e.description} for e in cat.entries.values()]

    def text(doc: dict[str, Any]) -> str:
        lines = []
        for title, episode in (("profiles (--profiles MIX)", False),
                               ("episodes (--episode KIND@START+DURATION)", True)):
            lines.append(title)
            for r in (r for r in doc["entries"] if r["episode"] == episode):
                hr = f"{r['hr_bpm'][0]:g}-{r['hr_bpm'][1]:g} bpm" if r["hr_bpm"] else ""
                span = f"{r['duration_s']:g} s" if r["duration_s"] else ""
                lines.append(f"  {r['name']:<16}{r['kind']:<10}{hr or span:<14}{r['description']}")
        return "\n".join(lines)

    emit({"entries": rows}, args.json, text)
    return 0


def status_or_watch(args: argparse.Namespace) -> int:
    """`status`, or with --watch the same view refreshed (lab.observe.live)."""
    if not args.watch:
        return status(args)
    from lab.observe.live import is_terminal, watch
    from lab.observe.views import status_table
    from lab.report.status import format_status
    from lab.report.status import status as stack_status

    if args.json:
        raise UsageError("--watch shows the text view; use --json without --watch, in a loop")
    sd = state_dir(args)
    stack_status(sd)  # no stack at all: one line and exit 1 now (a stack that goes away later
    # is shown as such in the frames)
    # a terminal gets rich's coloured table redrawn in place; a pipe the plain text, frame by frame
    view = status_table if is_terminal(sys.stdout) else format_status
    return watch(lambda: view(stack_status(sd)), interval_s=args.interval, count=args.count,
                 out=sys.stdout)


def inspect_devices(args: argparse.Namespace) -> int:
    from ecgcore.clock import SystemClock
    from lab.report import inspection

    doc = inspection.inspect_devices(state_dir(args), SystemClock().now())
    emit(doc, args.json, inspection.format_devices)
    return 0


def inspect_devices_or_watch(args: argparse.Namespace) -> int:
    """`inspect devices`, or with --watch the same table refreshed (lab.observe.live)."""
    if not args.watch:
        return inspect_devices(args)
    from ecgcore.clock import SystemClock
    from lab.observe.live import is_terminal, watch
    from lab.observe.views import devices_table
    from lab.report import inspection

    if args.json:
        raise UsageError("--watch shows the text view; use --json without --watch, in a loop")
    sd, clock = state_dir(args), SystemClock()
    view = devices_table if is_terminal(sys.stdout) else inspection.format_devices
    return watch(lambda: view(inspection.inspect_devices(sd, clock.now())),
                 interval_s=args.interval, count=args.count, out=sys.stdout)


def inspect_reading(args: argparse.Namespace) -> int:
    if args.seq < 0:
        raise UsageError(f"SEQ must be 0 or more, got {args.seq}")
    from pathlib import Path

    from ecgcore.clock import SystemClock
    from lab.report.reading import format_reading
    from lab.report.reading import inspect_reading as read_one

    now = SystemClock().now()
    doc = read_one(state_dir(args), args.device_id, args.seq, now=now,
                   png=Path(args.png) if args.png else None, csv=Path(args.csv) if args.csv else None)
    emit(doc, args.json, partial(format_reading, now=now))
    return 0


def inspect_alerts(args: argparse.Namespace) -> int:
    from ecgcore.clock import SystemClock
    from lab.report.alerts import format_alerts
    from lab.report.alerts import inspect_alerts as alerts

    now = SystemClock().now()
    emit(alerts(state_dir(args), args.device, now), args.json, partial(format_alerts, now=now))
    return 0


def inspect_device(args: argparse.Namespace) -> int:
    from ecgcore.clock import SystemClock
    from lab.report import inspection

    now = SystemClock().now()
    emit(inspection.inspect_device(state_dir(args), args.device_id), args.json,
         partial(inspection.format_device, now=now))
    return 0


def inspect_broker(args: argparse.Namespace) -> int:
    from ecgcore.clock import SystemClock
    from lab.report import inspection

    now = SystemClock().now()
    emit(inspection.inspect_broker(state_dir(args)), args.json, partial(inspection.format_broker, now=now))
    return 0


def inspect_ingest(args: argparse.Namespace) -> int:
    from lab.report import inspection

    emit(inspection.inspect_ingest(state_dir(args)), args.json, inspection.format_ingest)
    return 0


def report(args: argparse.Namespace) -> int:
    from lab.report.inspection import require_state_dir
    from lab.report.summary import build_report, format_report

    sd = state_dir(args)
    require_state_dir(sd)
    rep = build_report(sd)
    emit(rep, args.json, partial(format_report, max_devices=10**9 if args.all else 20))
    return 0


def logs(args: argparse.Namespace) -> int:
    from lab.observe.logs import run_logs

    return run_logs(state_dir(args), args.component, follow=args.follow, lines=args.lines,
                    out=sys.stdout)


def tail(args: argparse.Namespace) -> int:
    from lab.observe.tail import run_tail

    return run_tail(state_dir(args), args.device, count=args.count, as_json=args.json, out=sys.stdout,
                    timeout_s=args.for_s, show_all=args.all)
