"""The checker: a pure function from a run's History (lab.history.load_history) to what happened
to every reading, composed of small checkers in the manner of Jepsen's checker/compose.

    check(history, expect=None, *, grace_s=1.0) -> CheckResult

No I/O, no clock, no randomness: the same history always gives the same result, and every
rule below and in the docstrings of the modules below is unit-tested on hand-written histories
(tests/lab/test_checker.py).

check() builds the shared index once and merges the parts of the small checkers:

    index.py     ReadingIndex: one pass over the history; committed or not; the release event
    windows.py   FaultWindows: effective intervals, broker restarts; the window of a loss
    classify.py  the outcome of each reading and the cause of each loss
    counts.py    the counts per device and in total
    measures.py  latency, backlog high-water marks, drain after each fault, reordering
    clinical.py  the clinical section: each patient's episodes seen live, late, lost or missed
    ec57.py      the analysis scored as EC57 scores rhythm algorithms: beats, and episodes
    forgeries.py stored readings that are not what their device generated
    expect.py    the expectation language and the verdict
    result.py    the value types of the result (CheckResult, Counts, ...) and CAUSES

Words (Jepsen's set checker, STYLE.md): a reading is identified by its key
(device_id, boot_epoch, seq). The readings the checker classifies are the keys of the
`generated` events; a key that was stored but never generated is *unexpected* (counted on its
own, in no other term).

The identity
    generated = stored + buffered + evicted + lost holds exactly, per device and in total,
    over every generated key. Uncommitted readings are in `generated` and in `lost` (cause
    device-crash-before-persisting) and are also listed on their own (`uncommitted`).
    lab/report/ledger.py cannot see them (its generated is next_seq), so `committed` =
    generated − uncommitted is the ledger's generated, and lost − uncommitted is the ledger's
    lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from lab.checker.classify import BrokerDrops, classify
from lab.checker.clinical import clinical
from lab.checker.cost import cost
from lab.checker.counts import count
from lab.checker.ec57 import ec57
from lab.checker.expect import Expectation, verdict
from lab.checker.fidelity import (
    fidelity,
    ix_start,
    no_story_drain,
    with_analysis,
    with_forgeries,
    with_generation,
)
from lab.checker.forgeries import forged
from lab.checker.generation import skipped_chunks
from lab.checker.index import ReadingIndex
from lab.checker.measures import (
    backlog,
    broker_queue,
    latencies,
    outbox_levels,
    reordered,
    window_drains,
)
from lab.checker.result import CheckResult
from lab.checker.windows import FaultWindows, window_reports
from lab.history import History


def check(history: History, expect: Expectation | str | Iterable[Expectation | str] | None = None,
          *, grace_s: float = 1.0, max_lag_s: float | None = None,
          story_drain_s: Callable[[float], float] = no_story_drain,
          run_end: float | None = None, machine_scale: float = 1.0) -> CheckResult:
    """Classify every reading of `history`; with `expect`, also give the verdict. run_end: when
    the timeline ended (closes the baseline rhythms of the clinical section; default the
    history's end); machine_scale: 1 / the run's speed, for the clinical delays
    (lab/checker/clinical.py)."""
    ix = ReadingIndex(history)
    fw = FaultWindows(history, grace_s)
    drops = BrokerDrops(history.broker)
    classified = classify(ix, fw, drops, grace_s)
    unexpected = sorted(k for k in ix.stored if k not in ix.gens)
    impostors = forged(ix)
    devices, totals = count(ix, classified.outcomes, unexpected, reordered(history))
    latency, backlog_latency = latencies(ix)
    outbox, queue = outbox_levels(ix), broker_queue(history.broker)
    high = backlog(outbox, queue)
    drains = window_drains(fw.windows, outbox.series, queue.series)
    end = run_end if run_end is not None else (history.ended_at or 0.0)
    skips = skipped_chunks(history, fw.windows)
    # without an analysis stage there is nothing to judge: no episode counts as missed
    clin = clinical(history, classified.outcomes, end, machine_scale) if history.analysed else None
    result = CheckResult(
        delivery=ix.mode, totals=totals, devices=devices, outcomes=classified.outcomes,
        losses=tuple(classified.losses), uncommitted=tuple(classified.uncommitted),
        unexpected=tuple(unexpected), forged=tuple(impostors), latency=latency,
        backlog_latency=backlog_latency, backlog=high,
        windows=window_reports(fw, classified.losses, drains),
        broker_dropped=drops.total,
        cost=cost(history, totals.generated, totals.stored, outbox.series, high, len(ix.devices)),
        fidelity=with_forgeries(with_generation(with_analysis(
            fidelity(ix, fw.windows, drains, outbox.series, queue.series,
                     end=history.ended_at or 0.0, max_lag_s=max_lag_s, story_drain_s=story_drain_s,
                     restored=fw.restored),
            len(history.unanalysed) if clin is not None else 0, totals.stored,
            0 if clin is None else clin.counts()["unanalysed"]),
            skips.count, skips.generated, skips.first_at, ix_start(ix)),
            len(impostors), outbox.series.at(history.ended_at or 0.0)),
        clinical=clin, ec57=None if clin is None else ec57(history.beat_spans, history.truth, clin, end),
    )
    if expect is None:
        return result
    exps = [expect] if isinstance(expect, Expectation | str) else list(expect)
    ok, lines = verdict(result, exps)
    return replace(result, ok=ok, verdict_lines=tuple(lines))
