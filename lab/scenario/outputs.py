"""What a scenario run leaves behind: per variant OUT/<variant>/report.json, ledger.jsonl and
the figures, and the summary `ecgpipe scenario run` prints.

    report_doc(...)     report.json: the run, the checker's verdict, the ledger's totals, the stack
    write_ledger(...)   ledger.jsonl: one line per generated reading and its verdict
    write_outputs(...)  both, and the figures, for one finished variant -> VariantRun
    summary(runs)       one paragraph per variant: PASS/FAIL, the totals, the verdict lines
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.checker import CheckResult
from lab.checker.fidelity import suggest_speed
from lab.history import Generated, History
from lab.report.summary import build_report, clinical_headline
from lab.scenario.model import Scenario, Variant
from lab.stack.control import Progress
from lab.stack.statedir import StackConfig, StateDir

PASS, FAIL, UNFAITHFUL = "PASS", "FAIL", "UNFAITHFUL"
EXIT_CODES = {PASS: 0, FAIL: 1, UNFAITHFUL: 3}  # 2 is a usage error


def outcome(result: CheckResult) -> str:
    """UNFAITHFUL when the stack did not keep up with the timeline (whatever the expectations
    say: they are about a different story then), else PASS or FAIL by the expectations."""
    if result.fidelity.faithful is False:
        return UNFAITHFUL
    return PASS if result.ok else FAIL


def exit_code(runs: list[VariantRun]) -> int:
    """The worst outcome's code: UNFAITHFUL (3) over FAIL (1) over PASS (0)."""
    return max((EXIT_CODES[r.outcome] for r in runs), default=0)


def advice(result: CheckResult, speed: float) -> str | None:
    """What to try instead of a run that was not faithful."""
    suggested = suggest_speed(speed, result.fidelity)
    if suggested is None:
        return None
    return f"run it at --speed {suggested:g} or slower, or with fewer --devices"


@dataclass(frozen=True)
class VariantRun:
    variant: str
    ok: bool
    verdict_lines: tuple[str, ...]
    result: CheckResult
    report: dict[str, Any]
    out_dir: Path
    outcome: str = PASS


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
            "seed": scn.seed, "duration_s": scn.duration, "ok": outcome(result) == PASS,
            "outcome": outcome(result), "advice": advice(result, speed),
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


def write_outputs(scn: Scenario, var: Variant, speed: float, cfg: StackConfig, sd: StateDir,
                  hist: History, result: CheckResult, vdir: Path, say: Progress,
                  drained: dict[str, Any] | None = None) -> VariantRun:
    """report.json, ledger.jsonl and the figures of one variant in `vdir`. A figure that cannot
    be drawn is a note: it never hides the verdict."""
    report = report_doc(scn, var, speed, cfg, result, build_report(sd))
    report["drain"] = drained
    vdir.mkdir(parents=True, exist_ok=True)
    (vdir / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True, default=str))
    write_ledger(hist, result, vdir / "ledger.jsonl")
    try:
        from lab.report.figures import write_figures

        write_figures(hist, result, sd, vdir, title=f"{scn.name} / {var.name}")
    except Exception as exc:  # noqa: BLE001 - whatever breaks a figure must not hide the verdict
        say(f"      note: figures not written: {type(exc).__name__}: {exc}")
    return VariantRun(var.name, outcome(result) == PASS, tuple(result.verdict_lines), result, report,
                      vdir, outcome(result))


def summary(runs: list[VariantRun]) -> str:
    lines = []
    for r in runs:
        t = r.result.totals
        causes = ", ".join(f"{c} {n}" for c, n in t.lost_by_cause.items() if n)
        lines.append(f"{r.variant:<16} {r.outcome}  generated {t.generated}, "
                     f"stored {t.stored}, buffered {t.buffered}, evicted {t.evicted}, lost {t.lost}"
                     + (f" ({causes})" if causes else "") + f", duplicates {t.duplicates}")
        lines.append(f"    {_cost_line(r.result)}")
        if r.result.clinical is not None:
            lines.append(f"    clinical: {clinical_headline(r.result.clinical.as_dict(max_listed=0))}")
        lines += _fidelity_lines(r)
        lines += [f"    {v}" for v in r.verdict_lines]
        lines.append(f"    report: {r.out_dir / 'report.json'}")
    return "\n".join(lines)


def _cost_line(result: CheckResult) -> str:
    """Copies sent per reading, re-sends by reason, and the broker's backlog beside the outboxes'."""
    c, b = result.cost, result.backlog
    why = ", ".join(f"{k} {v}" for k, v in c.resent_by_reason.items())
    line = (f"sent {c.sent} copies ({c.amplification} per reading), re-sent {c.resent}"
            + (f" ({why})" if why else ""))
    if b.broker_hwm is not None and c.outbox_at_broker_hwm is not None:
        line += (f"; broker backlog peak {b.broker_hwm:g} beside {c.outbox_at_broker_hwm:g} in the "
                 f"outboxes (x{c.broker_over_outbox})")
    return line


def _fidelity_lines(r: VariantRun) -> list[str]:
    f = r.result.fidelity
    if f.faithful is None:
        return []
    if f.faithful:
        return [(f"    faithful: the stack kept up (worst lag outside faults {f.lag_s:g} s simulated, "
                f"allowed {f.max_lag_s:g} s)")]
    lines = [f"    NOT FAITHFUL: {reason}" for reason in f.reasons]
    hint = r.report.get("advice")
    if hint:
        lines.append(f"    the verdict below is about a run that did not play its timeline; {hint}")
    return lines
