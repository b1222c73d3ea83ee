"""Running one scenario variant against the real stack: `ecgpipe scenario run`'s work.

The runner starts a stack in `OUT/<variant>/state` whose processes share one simulated clock
(ecgcore.clock.shared_clock_env): simulated time stands still at SCENARIO_ORIGIN until every
process is healthy, then runs `speed` times faster than real time. The runner applies the
plan's fault steps at their simulated times (network faults through the link proxies,
lab.nemesis.proxyctl; process faults with signals, lab.nemesis.process, which records them in
history/nemesis.jsonl), stops the fleet at the end, lets ingest drain, and hands the state
dir's history to the pure checker. The generator/nemesis/checker split follows Jepsen: this
module only produces a history.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from analysis import store_view as analysis_view
from analysis.errors import AnalysisError
from ecgcore.clock import ScaledClock, SystemClock
from ecgcore.waiting import wait_until
from ingest import store_view as ing_view
from ingest.errors import IngestError
from lab.checker import check
from lab.history import label_windows, load_history
from lab.history.brokerstats import queued_now
from lab.nemesis import partition, proxyctl
from lab.nemesis.process import ProcessAction, ProcessNemesis, ProcessOp
from lab.scenario.config import MIN_KEEPALIVE_S, SCENARIO_ORIGIN, max_lag_s, stack_config, story_drain
from lab.scenario.drain import DELIVERED, OUT_OF_TIME, DrainRule
from lab.scenario.model import Scenario, Variant
from lab.scenario.outputs import VariantRun, write_outputs
from lab.scenario.plan import Step, plan
from lab.stack import control as stack
from lab.stack.control import Progress
from lab.stack.levels import Stable, buffered_total, stored_total
from lab.stack.procs import RUNNING, Component, python_argv
from lab.stack.statedir import StackConfig, StateDir

NOTE_EVERY_S = 5.0  # real seconds between two progress lines while the timeline runs


def process_op(step: Step) -> ProcessOp:
    """A process fault's step (kill, term, stop, cont, start) as the nemesis' operation."""
    return ProcessOp(action=ProcessAction(step.action), target=step.target or "", event=step.event,
                     fault=step.kind or "", fault_id=step.fault_id or "")


def apply_step(step: Step, sd: StateDir, clock: ScaledClock, nemesis: ProcessNemesis) -> None:
    """One plan step, now: a network fault's apply or heal goes to its link's proxy, anything
    else is a process operation."""
    if step.action in ("attack", "attack-end"):
        attack_step(step, sd)
    elif step.action == "apply":
        params = {k: v for k, v in step.params.items() if k != "kind"}
        proxyctl.send(sd.root, step.target or "", step.params["kind"], clock, **params)
    elif step.action == "heal":
        proxyctl.send(sd.root, step.target or "", "heal", clock)
    elif step.action == "partition":
        partition.partition(sd, step.target or "", clock)
    elif step.action == "heal-partition":
        partition.heal_partition(sd, clock)
    else:
        nemesis.apply(process_op(step))


def attack_step(step: Step, sd: StateDir) -> None:
    """Start the attacker of an [[attacks]] window (lab.nemesis.attacker, its own process on the
    stack's clock, appending its summary to DIR/history/attacks.jsonl when it ends), or stop it."""
    comp = Component(f"attack-{step.fault_id}", sd.root / "attack")
    if step.action == "attack-end":
        comp.stop(by="down")
        return
    cfg = sd.config()
    p = step.params
    argv = python_argv("lab.nemesis.attacker", "--state-dir", str(sd.root), step.kind or "",
                       "--as", str(p["as"]), "--victim", str(p["victim"]), "--rate", repr(p["rate"]),
                       "--record", str(sd.root / "history" / "attacks.jsonl"))
    comp.start(argv, env=stack.clock_env(sd, cfg))


def drain(sd: StateDir, say: Progress) -> dict[str, Any]:
    """The drain phase. Under compression the network is not compressed: a backlog that a
    real-time run would deliver in seconds of its last simulated hours gets only
    milliseconds of real time. So the fleet records nothing after the timeline's end
    (--record-until, exact in simulated time, so every speed records the same readings)
    and the runner lets it deliver for as long as the backlog is moving (lab/scenario/drain.py);
    what is still buffered then is reported as buffered (and `buffered = 0` expectations fail).
    Every fault has ended by then (the plan heals each at its end)."""
    if sd.component("devices").state() != RUNNING:
        return {"ended": "fleet not running", "real_s": 0.0, "left": buffered_total(sd)}
    rule = DrainRule(SystemClock())
    ended: list[str] = []

    def over() -> bool:
        why = rule.observe(stored_total(sd), buffered_total(sd), queued_now(sd.root))
        if why is not None:
            ended.append(why)
        return why is not None

    wait_until(over, rule.limits.max_limit_s + 5.0, poll_s=0.25)
    left, held = buffered_total(sd), queued_now(sd.root)
    why = ended[0] if ended else OUT_OF_TIME
    if why == DELIVERED:
        say(f"      drained in {rule.elapsed():.1f} s real")
    else:
        broker = "" if held is None else f", {held} messages held by the broker"
        say(f"      drain {why} after {rule.elapsed():.1f} s real; {left} readings still buffered"
            f" on the devices{broker}")
    return {"ended": why, "real_s": round(rule.elapsed(), 3), "left": left, "broker_left": held}


def analysis_catch_up(sd: StateDir, say: Progress) -> dict[str, Any]:
    """After the drain, let the analysis stage read what ingest stored last: the clinical
    section would otherwise call an episode in the last readings a detector miss. Its backlog
    is the stored readings past its cursor (it walks the store in rowid order), judged by the
    drain's rule (lab/scenario/drain.py): done when none is left, given up when it stopped
    moving or would take longer than 1.5 x its own projection (at most 15 min). What it did not
    analyse is then `unanalysed` in the clinical section, and the run is not faithful."""
    if sd.component("analysis").state() != RUNNING:
        return {"ended": "analysis not running"}
    rule = DrainRule(SystemClock())  # its stall and time limits; none left ends it at once
    ended: list[str] = []

    def over() -> bool:
        try:
            cursor = int(analysis_view.progress(sd.analysis_db)["cursor"])
            left = ing_view.count_after(sd.ingest_db, cursor)
        except (AnalysisError, IngestError):
            return False
        why = DELIVERED if left == 0 else rule.observe(cursor, left)  # nothing more will come
        if why is not None:
            ended.append(why)
        return why is not None

    wait_until(over, rule.limits.max_limit_s + 5.0, poll_s=0.25)
    why = "caught up" if ended and ended[0] == DELIVERED else (ended[0] if ended else OUT_OF_TIME)
    real_s = round(rule.elapsed(), 3)
    say(f"      analysis {'caught up' if why == 'caught up' else f'still behind ({why})'} "
        f"after {real_s:.1f} s real")
    return {"ended": why, "real_s": real_s}


def _snapshot(sd: StateDir) -> str:
    from devices import outbox_view as dev_inspect
    from ingest import store_view as ing_inspect

    buffered = sum(r["buffered"] for r in dev_inspect.device_summaries(sd.outbox_db))
    stored = ing_inspect.totals(sd.ingest_db)["stored"]
    return f"outboxes {buffered:>6}, ingest stored {stored:>7}"


def _fmt_sim(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3 * 3600 else f"{seconds:.0f} s"


def _announce(scn: Scenario, var: Variant, speed: float, cfg: StackConfig, say: Progress) -> None:
    say(f"--- {scn.name} / {var.name}: {var.fleet.devices} devices, {var.fleet.delivery}, "
        f"{_fmt_sim(scn.duration)} simulated at {speed:g}x (about {scn.duration / speed:.0f} s)")
    if var.fleet.keepalive is not None:
        floor = ", the 2-s floor" if cfg.keepalive == MIN_KEEPALIVE_S else ""
        say(f"      keepalive {var.fleet.keepalive:g} s simulated: the devices use {cfg.keepalive} "
            f"real s (= {cfg.keepalive * speed:g} s simulated{floor})")


def _play(steps: list[Step], sd: StateDir, clock: ScaledClock, nemesis: ProcessNemesis,
          say: Progress) -> None:
    """Each step at its simulated time, with a progress line every NOTE_EVERY_S real seconds,
    until the step that ends the run."""
    next_note = time.monotonic() + NOTE_EVERY_S
    for step in steps:
        while clock.monotonic() < step.at:
            time.sleep(min(0.05, max(0.0, clock.to_wall(step.at - clock.monotonic()))))
            if time.monotonic() >= next_note:
                next_note = time.monotonic() + NOTE_EVERY_S
                say(f"      t = {_fmt_sim(clock.monotonic()):>8}: {_snapshot(sd)}")
        if step.action == "end":
            break
        say(f"      t = {_fmt_sim(step.at):>8}: {step.action} {step.target} ({step.fault_id})")
        apply_step(step, sd, clock, nemesis)


def run_variant(scn: Scenario, var: Variant, speed: float, out: Path, say: Progress) -> VariantRun:
    """Run `var` of `scn` at `speed` in OUT/<variant>, check its history, write its outputs."""
    vdir = out / var.name
    sd = StateDir(vdir / "state")
    cfg = stack_config(scn, var, speed)
    _announce(scn, var, speed, cfg, say)
    sd.clock_anchor_file.unlink(missing_ok=True)  # a re-run into the same --out starts a new clock
    cfg = stack.up(sd, cfg, progress=lambda m: say("      " + m))
    # simulated time stood still at SCENARIO_ORIGIN while the stack started; it starts now
    clock = ScaledClock(speed=speed, origin=SCENARIO_ORIGIN, anchor=stack.start_clock(sd))
    nemesis = ProcessNemesis(sd, cfg, clock, say)
    try:
        _play(plan(scn, speed, var.name), sd, clock, nemesis, say)
        say("      run over: the devices record nothing more and deliver what they hold")
        drained = drain(sd, say)
        stack.kill(sd, "devices", "TERM")
        wait_until(Stable(sd, quiet_s=2.0), 60.0, poll_s=0.2)
        drained["analysis"] = analysis_catch_up(sd, say)
    finally:
        stack.down(sd)
        nemesis.close()
    hist = load_history(sd.root)
    names = [(f.id, f.kind, f.target, SCENARIO_ORIGIN + f.start) for f in scn.faults]
    hist = label_windows(hist, names, tolerance_s=max(2.0, 2.0 * speed))
    result = check(hist, var.expect, grace_s=0.1 * speed + 1.0, max_lag_s=max_lag_s(scn, speed),
                   story_drain_s=story_drain(var, speed), run_end=SCENARIO_ORIGIN + scn.duration,
                   machine_scale=1.0 / speed)
    return write_outputs(scn, var, speed, cfg, sd, hist, result, vdir, say, drained)
