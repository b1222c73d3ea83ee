"""`ecgpipe scenario run`: run a scenario against the real stack, check it, write the report.

For each variant (e.g. each delivery mode) the runner starts a stack in `OUT/<variant>/state`
whose processes share one simulated clock (ecgcore.clock.shared_clock_env): simulated time
stands still at SCENARIO_ORIGIN until every process is healthy, then runs `speed` times
faster than real time. The runner applies the plan's fault steps at their simulated times
(network faults through the link proxies, process faults with signals), records process
faults in history/nemesis.jsonl, stops the fleet at the end, lets ingest drain, and hands
the state dir's history to the pure checker. The generator/nemesis/checker split follows
Jepsen: this module only produces a history.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ecgcore.clock import ScaledClock
from ecgcore.files import JsonLines
from lab.checker import CheckResult, check
from lab.errors import ComponentError, ConfigError
from lab.history import Generated, History, label_windows, load_history
from lab.nemesis import proxyctl
from lab.report.summary import build_report
from lab.scenario import FleetSpec, Scenario, Step, Variant, plan
from lab.stack import control as stack
from lab.stack.control import Progress
from lab.stack.levels import Drained, Stable, buffered_total, wait_for
from lab.stack.procs import RUNNING
from lab.stack.statedir import StackConfig, StateDir

SCENARIO_ORIGIN = 1_688_947_200.0  # 2023-07-10T00:00:00Z: the week of the CardioComm outage


@dataclass(frozen=True)
class VariantRun:
    variant: str
    ok: bool
    verdict_lines: tuple[str, ...]
    result: CheckResult
    report: dict[str, Any]
    out_dir: Path


def with_chunk(var: Variant, chunk_s: float | None) -> Variant:
    """The variant with longer (or shorter) continuous-mode chunks: fewer readings per
    simulated second, so a continuous scenario can be compressed harder. A backlog pace
    (readings per second) scales with it, so that it still sends the same seconds of ECG
    per second."""
    if chunk_s is None:
        return var
    if not chunk_s > 0:
        raise ConfigError(f"--chunk-seconds must be more than 0, got {chunk_s:g}")
    pace = var.fleet.backlog_pace
    if pace is not None:
        pace = pace * var.fleet.chunk / chunk_s
    return replace(var, fleet=replace(var.fleet, chunk=chunk_s, backlog_pace=pace))


def with_devices(var: Variant, devices: int | None) -> Variant:
    """The variant with a smaller (or larger) fleet: a compressed form for quick runs and CI.
    A fleet split into profiles keeps their proportions (each profile at least one device)."""
    if devices is None or devices == var.fleet.devices:
        return var
    if devices < 1:
        raise ConfigError(f"--devices must be at least 1, got {devices}")
    fleet = var.fleet
    profiles = fleet.profiles
    if profiles:
        sizes = [max(1, round(p.devices * devices / fleet.devices)) for p in profiles]
        sizes[-1] = max(1, devices - sum(sizes[:-1]))
        if sum(sizes) != devices:
            raise ConfigError(f"--devices {devices} is too few for {len(profiles)} patient profiles")
        profiles = tuple(replace(p, devices=n) for p, n in zip(profiles, sizes, strict=True))
    return replace(var, fleet=replace(fleet, devices=devices, profiles=profiles))


def sim_to_real(sim_s: float, speed: float, floor_s: float) -> float:
    """A network timer that decides what a run loses, kept in simulated time: sim_s / speed
    real seconds, but at least floor_s (shorter real timers break on a busy 2-core machine
    or become a reconnect storm)."""
    return max(floor_s, sim_s / speed)


MIN_KEEPALIVE_S = 2  # real seconds: below this a busy 2-core machine drops healthy links
BACKOFF_CAP_S = 30.0  # simulated: the devices' longest wait between reconnect attempts
INGEST_RECONNECT_S = 4.0  # simulated: ingest's longest wait to reach the broker again


def real_keepalive(keepalive: float | None, speed: float) -> int:
    """The devices' MQTT keepalive in real seconds. A scenario's keepalive is simulated time,
    like everything in it, so under --speed K the devices use keepalive / K (at least
    MIN_KEEPALIVE_S): a blackhole is then noticed after the same simulated time as in a
    real-time run. Without one the fleet keeps its 10 real seconds."""
    if keepalive is None:
        return 10
    return min(65535, round(sim_to_real(keepalive, speed, MIN_KEEPALIVE_S)))


def real_backoff_cap(speed: float) -> float:
    """The reconnect backoff's cap: 30 s of simulated time, at least MIN_KEEPALIVE_S real.
    Without it, a device at 20x would wait up to 10 simulated minutes to come back."""
    return sim_to_real(BACKOFF_CAP_S, speed, float(MIN_KEEPALIVE_S))


def real_ingest_reconnect(speed: float) -> float:
    """Ingest's longest wait to reach the broker again: 4 s of simulated time (at least 0.1
    real s). Its queue overflows for as long as it stays away, so at 20,000x a real 4 s would
    be 22 simulated hours of strips dropped that a real-time run keeps."""
    return sim_to_real(INGEST_RECONNECT_S, speed, 0.1)


def cohort_specs(fleet: FleetSpec) -> tuple[str, ...]:
    """The scenario's patient profiles as the fleet's --cohort specs."""
    specs = []
    for p in fleet.profiles:
        spec = f"{p.name}:{p.devices}"
        if p.hr_bpm is not None:
            spec += f":hr={p.hr_bpm[0]:g}-{p.hr_bpm[1]:g}"
        if p.strips_per_day is not None:
            spec += f":strips={p.strips_per_day}"
        specs.append(spec)
    return tuple(specs)


def stack_config(scn: Scenario, var: Variant, speed: float) -> StackConfig:
    f, b = var.fleet, var.broker
    return StackConfig(
        devices=f.devices, delivery=f.delivery, max_queued=b.max_queued, persistence=b.persistence,
        outbox_capacity=f.outbox_capacity, outbox_policy=f.outbox_policy, seed=scn.seed,
        sample_rate=f.sample_rate, chunk_seconds=f.chunk, ack_timeout=f.ack_timeout, speed=speed,
        recording=f.recording, strip_seconds=f.strip_length or 30.0, strips_per_day=f.strips_per_day or 3,
        strip_chunks=f.strip_chunks or 1, window=f.window, clock_origin=SCENARIO_ORIGIN, clock_anchor_file=True,
        record_until=SCENARIO_ORIGIN + scn.duration, keepalive=real_keepalive(f.keepalive, speed), reconnect_backoff=f.reconnect_backoff,
        backlog_pace=f.backlog_pace, cohorts=cohort_specs(f), backoff_cap=real_backoff_cap(speed),
        ingest_reconnect_max=real_ingest_reconnect(speed),
    )


class Nemesis:
    """Applies one plan step to a running stack and records process faults."""

    def __init__(self, sd: StateDir, cfg: StackConfig, clock: ScaledClock, say: Progress) -> None:
        self.sd, self.cfg, self.clock, self.say = sd, cfg, clock, say
        self.history = JsonLines(sd.root / "history" / "nemesis.jsonl")

    def record(self, step: Step) -> None:
        rec: dict[str, Any] = {"t": round(self.clock.now(), 3), "event": step.event, "fault": step.kind,
                               "target": step.target, "id": step.fault_id}
        if step.target == "broker":
            rec["persistence"] = self.cfg.persistence
        self.history.append(rec)

    def _start(self, name: str) -> None:
        try:
            stack.start_component(self.sd, self.cfg, name, deadline_s=5.0)
        except ComponentError as exc:
            if self.sd.component(name).state() != RUNNING:
                raise
            self.say(f"      note: {name} started but is not healthy yet ({exc})")

    def apply(self, step: Step) -> None:
        a, target = step.action, step.target or ""
        if a == "apply":
            params = {k: v for k, v in step.params.items() if k != "kind"}
            proxyctl.send(self.sd.root, target, step.params["kind"], self.clock, **params)
        elif a == "heal":
            proxyctl.send(self.sd.root, target, "heal", self.clock)
        elif a in ("kill", "term", "stop"):
            self.record(step)
            stack.kill(self.sd, target, a.upper())
        elif a == "start":
            if self.sd.component(target).state() != RUNNING:
                self._start(target)
            self.record(step)
        elif a == "cont":
            stack.resume(self.sd, target)
            self.record(step)


DRAIN_DEADLINE_S = 120.0  # real seconds the drain phase may take at most


def drain(sd: StateDir, say: Progress) -> None:
    """The drain phase. Under compression the network is not compressed: a backlog that a
    real-time run would deliver in seconds of its last simulated hours gets only
    milliseconds of real time. So the fleet records nothing after the timeline's end
    (--record-until, exact in simulated time, so every speed records the same readings)
    and the runner lets it deliver until its outboxes are empty (or nothing has moved for
    10 s, or DRAIN_DEADLINE_S pass); what is still buffered then is reported as buffered.
    Every fault has ended by then (the plan heals each at its end)."""
    if sd.component("devices").state() != RUNNING:
        return
    t0 = time.monotonic()
    done = wait_for(Drained(sd, quiet_s=1.0, stall_s=10.0), deadline_s=DRAIN_DEADLINE_S, poll_s=0.2)
    left = buffered_total(sd)
    say(f"      drained in {time.monotonic() - t0:.1f} s real" + (f"; {left} readings still buffered"
                                                                  if left or not done else ""))


def _snapshot(sd: StateDir) -> str:
    from devices import outbox_view as dev_inspect
    from ingest import store_view as ing_inspect

    buffered = sum(r["buffered"] for r in dev_inspect.device_summaries(sd.outbox_db))
    stored = ing_inspect.totals(sd.ingest_db)["stored"]
    return f"outboxes {buffered:>6}, ingest stored {stored:>7}"


def _fmt_sim(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3 * 3600 else f"{seconds:.0f} s"


def run_variant(scn: Scenario, var: Variant, speed: float, out: Path, say: Progress) -> VariantRun:
    vdir = out / var.name
    sd = StateDir(vdir / "state")
    cfg = stack_config(scn, var, speed)
    say(f"--- {scn.name} / {var.name}: {var.fleet.devices} devices, {var.fleet.delivery}, "
        f"{_fmt_sim(scn.duration)} simulated at {speed:g}x (about {scn.duration / speed:.0f} s)")
    if var.fleet.keepalive is not None:
        say(f"      keepalive {var.fleet.keepalive:g} s simulated: the devices use {cfg.keepalive} real s "
            f"(= {cfg.keepalive * speed:g} s simulated" + (", the 2-s floor" if cfg.keepalive == MIN_KEEPALIVE_S
                                                             else "") + ")")
    sd.clock_anchor_file.unlink(missing_ok=True)  # a re-run into the same --out starts a new clock
    cfg = stack.up(sd, cfg, progress=lambda m: say("      " + m))
    # simulated time stood still at SCENARIO_ORIGIN while the stack started; it starts now
    clock = ScaledClock(speed=speed, origin=SCENARIO_ORIGIN, anchor=stack.start_clock(sd))
    nemesis = Nemesis(sd, cfg, clock, say)
    steps = plan(scn, speed, var.name)
    next_note = time.monotonic() + 5
    try:
        for step in steps:
            while clock.monotonic() < step.at:
                time.sleep(min(0.05, max(0.0, clock.to_wall(step.at - clock.monotonic()))))
                if time.monotonic() >= next_note:
                    next_note = time.monotonic() + 5
                    say(f"      t = {_fmt_sim(clock.monotonic()):>8}: {_snapshot(sd)}")
            if step.action == "end":
                break
            say(f"      t = {_fmt_sim(step.at):>8}: {step.action} {step.target} ({step.fault_id})")
            nemesis.apply(step)
        say("      run over: the devices record nothing more and deliver what they hold")
        drain(sd, say)
        stack.kill(sd, "devices", "TERM")
        wait_for(Stable(sd, quiet_s=2.0), deadline_s=60.0)
    finally:
        stack.down(sd)
        nemesis.history.close()
    hist = load_history(sd.root)
    names = [(f.id, f.kind, f.target, SCENARIO_ORIGIN + f.start) for f in scn.faults]
    hist = label_windows(hist, names, tolerance_s=max(2.0, 2.0 * speed))
    result = check(hist, var.expect, grace_s=0.1 * speed + 1.0)
    report = report_doc(scn, var, speed, cfg, result, build_report(sd))
    vdir.mkdir(parents=True, exist_ok=True)
    (vdir / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True, default=str))
    write_ledger(hist, result, vdir / "ledger.jsonl")
    try:
        from lab.report.figures import write_figures

        write_figures(hist, result, sd, vdir, title=f"{scn.name} / {var.name}")
    except Exception as exc:  # a figure must never hide the verdict
        say(f"      note: figures not written: {type(exc).__name__}: {exc}")
    return VariantRun(var.name, bool(result.ok), tuple(result.verdict_lines), result, report, vdir)


STACK_FIELDS = ("devices", "delivery", "recording", "chunk_seconds", "max_queued", "persistence",
                "reconnect_backoff", "backlog_pace", "cohorts")


def report_doc(scn: Scenario, var: Variant, speed: float, cfg: StackConfig, result: CheckResult,
               ledger: dict[str, Any]) -> dict[str, Any]:
    """report.json: the run, the checker's result, the ledger's totals, and the stack settings
    the variant actually ran with (real-time values named *_real_s)."""
    stack_doc: dict[str, Any] = {k: getattr(cfg, k) for k in STACK_FIELDS}
    stack_doc.update(cohorts=list(cfg.cohorts), keepalive_real_s=cfg.keepalive,
                     backoff_cap_real_s=cfg.backoff_cap, ingest_reconnect_max_real_s=cfg.ingest_reconnect_max)
    return {"scenario": scn.name, "description": scn.description, "variant": var.name, "speed": speed,
            "seed": scn.seed, "duration_s": scn.duration, "ok": bool(result.ok),
            "verdict": list(result.verdict_lines), "check": result.as_dict(max_listed=200),
            "ledger": {k: ledger[k] for k in ("totals", "broker", "latency_s", "balanced")},
            "stack": stack_doc}


def write_ledger(hist: History, result: CheckResult, path: Path) -> int:
    """The per-reading ledger, one JSON line per generated reading in (device, boot, seq)
    order: its capture time and the checker's verdict on it (outcome, cause and fault window
    of a loss, eviction reason, duplicates, recovered). Two runs of one scenario and seed
    can be compared line by line (`diff`), whatever speed each ran at."""
    cap = {e.key: e.cap for e in hist.device_events if isinstance(e, Generated)}
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for key in sorted(result.outcomes):
            o = result.outcomes[key]
            dev, boot, seq = key
            rec: dict[str, Any] = {"dev": dev, "boot": boot, "seq": seq, "captured_at": cap.get(key),
                                   "outcome": o.outcome}
            if o.outcome == "lost":
                rec.update(cause=o.cause, window=o.window, committed=o.committed)
            if o.reason is not None:
                rec["reason"] = o.reason
            if o.duplicates:
                rec["duplicates"] = o.duplicates
            if o.recovered:
                rec["recovered"] = True
            fh.write(json.dumps(rec, separators=(",", ":")) + "\n")
    tmp.replace(path)
    return len(result.outcomes)


def summary(runs: list[VariantRun]) -> str:
    lines = []
    for r in runs:
        t = r.result.totals
        causes = ", ".join(f"{c} {n}" for c, n in t.lost_by_cause.items() if n)
        lines.append(f"{r.variant:<16} {'PASS' if r.ok else 'FAIL'}  generated {t.generated}, stored {t.stored}, "
                     f"buffered {t.buffered}, evicted {t.evicted}, lost {t.lost}"
                     + (f" ({causes})" if causes else "") + f", duplicates {t.duplicates}")
        lines += [f"    {v}" for v in r.verdict_lines]
        lines.append(f"    report: {r.out_dir / 'report.json'}")
    return "\n".join(lines)
