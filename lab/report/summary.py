"""The report: the ledger per device and in total, the broker's dropped counter beside
"lost", capture→store latency, and the clinical section (what the outage cost the patients,
lab/checker/clinical.py). Reads only the state dir."""

from __future__ import annotations

from typing import Any

import numpy as np

from devices import outbox_view as dev_inspect
from ingest import store_view as ing_inspect
from lab.checker import check, seq_ranges
from lab.errors import LabError
from lab.history import load_history
from lab.history.brokerstats import broker_stats
from lab.report.inspection import duplicate_origins, duplicates_line
from lab.report.ledger import FIELDS, Ledger, build_ledger
from lab.report.sources import broker_samples_problem, require_sources
from lab.stack.statedir import StateDir
from lab.timefmt import ago


def gather_ledger(sd: StateDir) -> Ledger:
    sets = dev_inspect.ledger_sets(sd.outbox_db)
    stats = ing_inspect.device_stats(sd.ingest_db)
    return build_ledger(
        generated={d: v["generated"] for d, v in sets.items()},
        stored=ing_inspect.stored_seqs(sd.ingest_db),
        buffered={d: v["buffered"] for d, v in sets.items()},
        evicted={d: v["evicted"] for d, v in sets.items()},
        duplicates={d: int(v.get("duplicates", 0)) for d, v in stats.items()},
    )


def latency_quantiles(values: np.ndarray) -> dict[str, float | None]:
    if values.size == 0:
        return {"p50": None, "p99": None, "max": None, "n": 0}
    p50, p99 = np.percentile(values, [50, 99])
    return {"p50": round(float(p50), 3), "p99": round(float(p99), 3), "max": round(float(values.max()), 3),
            "n": int(values.size)}


def build_report(sd: StateDir) -> dict[str, Any]:
    require_sources(sd, outbox=True, ingest=True)
    ledger = gather_ledger(sd)
    notes = []  # what the report had to do without, said on screen (never silent zeros)
    broker = broker_stats(sd.root)
    if problem := broker_samples_problem(sd):
        notes.append(f"broker counters unavailable: {problem}; 'broker dropped' is not known")
    try:
        cfg = sd.config().__dict__
    except (LabError, TypeError, ValueError) as exc:  # a copied state dir may lack a valid
        # stack.json; the ledger does not need it
        cfg = {}
        notes.append(f"stack settings unavailable ({exc}); the ledger does not need them")
    quarantine = ing_inspect.quarantine_counts(sd.ingest_db)
    history = load_history(sd.root)
    speed = cfg.get("speed")  # the clinical delays count the machine's time at real seconds
    scale = 1.0 / speed if isinstance(speed, int | float) and speed > 0 else 1.0
    checked = check(history, machine_scale=scale)
    return {
        "state_dir": str(sd.root),
        "stack": cfg,
        "totals": ledger.totals,
        "balanced": ledger.balanced(),
        "evicted_by_reason": ledger.evicted_by_reason,
        "devices": {
            d: {**led.as_dict(), "lost_ranges": seq_ranges(led.lost_seqs)}
            for d, led in ledger.devices.items()
        },
        "broker": {"dropped": broker["dropped"], "restarts_seen": broker["restarts_seen"],
                   "stored_messages": broker["stored_messages"], "counters_available": problem is None},
        "notes": notes,
        "quarantined": {"total": sum(quarantine.values()), "by_reason": quarantine},
        # copies of stored readings that ingest discarded, and where they came from
        "duplicates": {"total": ledger.totals["duplicates"], **duplicate_origins(history)},
        # what delivery cost, from the history (lab/checker/cost.py)
        "cost": {**checked.cost.as_dict(), "broker_hwm": checked.backlog.broker_hwm,
                 "outbox_hwm": checked.backlog.outbox_hwm},
        # from the end of capture (the moment the reading could first be sent) to its commit
        "latency_s": {**latency_quantiles(ing_inspect.latencies(sd.ingest_db, from_end_of_chunk=True)),
                      "from": "capture end"},
        # each patient's episodes against the ground truth: seen live, late, lost, missed
        "clinical": checked.clinical.as_dict() if checked.clinical is not None else None,
        # the analysis scored as EC57 scores rhythm algorithms (lab/checker/ec57.py)
        "ec57": checked.ec57.as_dict() if checked.ec57 is not None else None,
    }


def format_report(rep: dict[str, Any], max_devices: int = 20) -> str:
    t = rep["totals"]
    head = f"{'device':<12}" + "".join(f"{k:>11}" for k in FIELDS)
    lines = [f"ledger for {rep['state_dir']}"
             + (f"  (delivery {rep['stack'].get('delivery')})" if rep.get("stack") else ""), head]
    items = sorted(rep["devices"].items())
    for d, row in items[:max_devices]:
        lines.append(f"{d:<12}" + "".join(f"{row[k]:>11}" for k in FIELDS))
    if len(items) > max_devices:
        lines.append(f"... {len(items) - max_devices} more devices (use --json for all)")
    lines.append(f"{'TOTAL':<12}" + "".join(f"{t[k]:>11}" for k in FIELDS))
    ok = "holds" if rep["balanced"] else "DOES NOT HOLD"
    lines.append(f"generated = stored + buffered + evicted + lost: "
                 f"{t['generated']} = {t['stored']} + {t['buffered']} + {t['evicted']} + {t['lost']} ({ok})")
    if rep["broker"].get("counters_available", True):
        lines.append(f"broker dropped (PUBACKed, then discarded): {rep['broker']['dropped']}"
                     f"   beside lost: {t['lost']}")
    if rep["evicted_by_reason"]:
        reasons = rep["evicted_by_reason"].items()
        lines.append("evicted by reason: " + ", ".join(f"{k}: {v}" for k, v in reasons))
    q = rep["quarantined"]
    if q["total"]:
        lines.append(f"quarantined messages: {q['total']} ("
                     + ", ".join(f"{k}: {v}" for k, v in q["by_reason"].items()) + ")")
    dup = rep.get("duplicates") or {}
    if dup.get("total"):
        lines.append(duplicates_line(dup["total"], dup.get("by_origin", {}), dup.get("resent_by_reason", {})))
    lines += _cost_lines(rep.get("cost") or {})
    lat = rep["latency_s"]
    if lat["n"]:
        lines.append(f"capture-end->store latency: p50 {_span(lat['p50'])}, p99 {_span(lat['p99'])}, "
                     f"max {_span(lat['max'])} over {lat['n']} readings")
    lines += clinical_lines(rep.get("clinical"))
    lines += ec57_lines(rep.get("ec57"))
    lines += [f"note: {n}" for n in rep.get("notes", ())]
    return "\n".join(lines)


def _delay(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def clinical_headline(c: dict[str, Any] | None) -> str:
    """The clinical section in one line: "12 AF episodes, 12 seen, all late (p50 71.8 h, max
    72.1 h; each raised within 2 min of when it could arrive)", "12 AF episodes, none seen:
    12 lost (qos0-link-down 12)", ... ("could arrive": its reading was captured and the fault
    holding it back had ended: what is left of the delay is the pipeline's own.)"""
    if not c:
        return "no clinical section"
    t, kinds = c["totals"], c.get("by_kind", {})
    n = t["episodes"]
    named = [k for k, v in kinds.items() if v["episodes"]]
    what = (f"{n} {named[0].upper() if named[0] == 'af' else named[0]} episode{'s' * (n != 1)}"
            if len(named) == 1 else f"{n} episode{'s' * (n != 1)}"
            + (" (" + ", ".join(f"{kinds[k]['episodes']} {k}" for k in named) + ")" if named else ""))
    parts = [what]
    if n:
        seen, live, late, d = t["seen"], t["live"], t["late"], c["delay_s"]
        if not seen:
            parts.append("none seen")
        else:
            delays = f"p50 {_delay(d['p50'])}, max {_delay(d['max'])}"
            waited = c.get("wait_s", {}).get("max")
            if late and waited is not None:  # how soon after they could arrive: the outage's cost
                delays += f"; each raised within {_delay(waited)} of when it could arrive"
            when = ("all live" if live == seen else f"all late ({delays})" if late == seen
                    else f"{live} live, {late} late ({delays})")
            parts.append(f"{seen} seen, {when}")
        if t["lost"]:
            causes = ", ".join(f"{k} {v}" for k, v in c.get("lost_by_cause", {}).items())
            parts.append(f"{t['lost']} lost ({causes})")
        if t["buffered"]:
            parts.append(f"{t['buffered']} never arrived (still buffered)")
        if t.get("unanalysed"):
            parts.append(f"{t['unanalysed']} not analysed (the analysis stage was behind)")
        if t["missed"]:
            parts.append(f"{t['missed']} missed by the detector")
    if t.get("unrecorded"):
        parts.append(f"{t['unrecorded']} while not recording")
    parts.append(f"{t['false_alarms']} false alarm{'s' * (t['false_alarms'] != 1)}")
    return ", ".join(parts)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def ec57_lines(e: dict[str, Any] | None) -> list[str]:
    """EC57 scores: beats in total and per artifact label, episodes per kind."""
    if not e or not e["beats"]["spans"]:
        return []
    b = e["beats"]
    per = "; ".join(f"{k} Se {_pct(v['se'])}, +P {_pct(v['ppv'])}" for k, v in b["by_artifact"].items())
    lines = [(f"EC57 beats over {b['spans']} spans ({b['seconds']:.0f} s): Se {_pct(b['se'])}, "
              f"+P {_pct(b['ppv'])} ({per})")]
    if e["episodes"]:
        lines.append("EC57 episodes: " + "; ".join(
            f"{k} Se {_pct(v['se'])}, +P {_pct(v['ppv'])}" for k, v in e["episodes"].items()))
    return lines


def clinical_lines(c: dict[str, Any] | None) -> list[str]:
    """The report's clinical block: the headline, then one line per kind of episode."""
    if not c or (not c["totals"]["episodes"] and not c["events"] and not c["totals"]["unrecorded"]):
        return []
    lines = [f"clinical: {clinical_headline(c)}"]
    for kind, k in c.get("by_kind", {}).items():
        lines.append(f"  {kind:<6} episodes {k['episodes']}: live {k['live']}, late {k['late']}, "
                     f"lost {k['lost']}, never arrived {k['buffered']}, "
                     f"not analysed {k.get('unanalysed', 0)}, missed {k['missed']}; "
                     f"false alarms {k['false_alarms']}")
    return lines


def _span(seconds: float) -> str:
    """A latency as people read it: '6.575 s' below a minute, else '3 h 12 min'."""
    return f"{seconds:.3f} s" if abs(seconds) < 60 else ago(seconds)


def _cost_lines(cost: dict[str, Any]) -> list[str]:
    """What delivery cost: copies per reading, re-sends by reason, the broker's backlog beside
    the outboxes' (duplicates by origin: format_report's duplicates line)."""
    if not cost.get("sent"):
        return []
    why = ", ".join(f"{k} {v}" for k, v in cost["resent_by_reason"].items())
    lines = [f"copies sent: {cost['sent']} ({cost['amplification']} per reading generated, "
             f"{cost['sent_per_stored']} per reading stored): {cost['first']} first, "
             f"{cost['resent']} re-sent" + (f" ({why})" if why else "")]
    if cost.get("broker_hwm") is not None:
        lines.append(f"backlog high-water marks: broker {cost['broker_hwm']:g} (device outboxes then "
                     f"{cost['outbox_at_broker_hwm']:g}, ratio {cost['broker_over_outbox']}), "
                     f"device outboxes {cost['outbox_hwm']}")
    return lines
