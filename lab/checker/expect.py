"""The expectation language: what a scenario says must hold of a CheckResult, and the verdict.

    parse_expectation("lost = 0") -> Expectation(metric="lost", op="=", value=0.0)
    verdict(result, ["lost = 0", ...]) -> (True, ["ok    lost = 0   (lost = 0)", ...])

Expectations: "lost = 0", "lost > 0", "stored >= 100", "cause.broker-queue-overflow > 0",
"window.blackhole.lost > 0", ... (parse_expectation; METRICS lists the names) and
verdict(result, expectations) -> (ok, lines).

The right-hand side is a number, a duration ("episode_delay.p50 >= 70h": seconds, as
lab.units reads them) or another measure ("episodes_seen = episodes").

A measure is a name CheckResult.metrics() gives (METRIC_HELP lists them for error messages).
A cause or eviction reason that never happened counts as 0; a window the history does not
have fails; an undefined measure (latency with nothing stored) fails.

Clinical measures (lab/checker/clinical.py): episodes, episodes_live, episodes_late,
episodes_seen, episodes_lost, episodes_buffered, episodes_unanalysed, episodes_missed,
episodes_unrecorded and
false_alarms, each also per kind with a suffix .af | .brady | .tachy | .pause
("episodes_seen.af = 0"), and episode_delay.p50|p99|max (seconds, undefined when nothing
was seen). EC57 scores (lab/checker/ec57.py, fractions 0..1, undefined without beats):
beats.se, beats.ppv, beats.<label>.se|ppv (label: clean, lead-off, motion, emg, wander,
mains), episode_se.<kind>, episode_ppv.<kind>.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from lab.checker.clinical import EPISODE_KINDS
from lab.checker.clinical import OUTCOMES as EPISODE_OUTCOMES
from lab.checker.result import CAUSES, COUNT_FIELDS, QUANTILES, CheckResult
from lab.errors import ConfigError, LabError
from lab.units import parse_duration


class ExpectationError(LabError):
    """An expectation string that does not parse, or names no known measure."""


_OPS: dict[str, Callable[[float, float], bool]] = {
    "=": lambda a, b: a == b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}
_CAUSE_RE = "|".join(re.escape(c) for c in CAUSES)
_Q_RE = "|".join(QUANTILES)
_EPISODE_RE = "|".join((*EPISODE_OUTCOMES, "seen", "unrecorded"))
_KIND_RE = "|".join(EPISODE_KINDS)
WINDOW_ID = re.compile(r"[A-Za-z0-9_-]+")
METRICS = re.compile(
    rf"(?:{'|'.join(COUNT_FIELDS)})"
    rf"|cause\.(?:{_CAUSE_RE})"
    r"|evicted\.[A-Za-z0-9_:.-]+"
    r"|quarantined\.[a-z-]+"
    rf"|(?:latency|backlog_latency)\.(?:{_Q_RE})"
    r"|hwm\.(?:outbox|outbox_device|broker)"
    r"|broker\.dropped|drain\.max|forged|sent|resent|amplification|hwm\.broker_over_outbox"
    r"|fidelity\.lag|faithful"
    r"|resent\.[a-z-]+"
    rf"|window\.[A-Za-z0-9_-]+\.(?:lost|drain|cause\.(?:{_CAUSE_RE}))"
    rf"|(?:episodes(?:_(?:{_EPISODE_RE}))?|false_alarms)(?:\.(?:{_KIND_RE}))?"
    r"|episode_delay\.(?:p50|p99|max)"
    r"|beats(?:\.[a-z-]+)?\.(?:se|ppv)"
    rf"|episode_(?:se|ppv)\.(?:{_KIND_RE})"
)
_EXPECTATION = re.compile(
    r"\s*(?P<metric>[A-Za-z0-9_.:-]+)\s*(?P<op>==|!=|<=|>=|=|<|>)\s*"
    r"(?:(?P<value>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)"
    r"|(?P<duration>(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ms|s|m|h|d))+)"
    r"|(?P<other>[A-Za-z_][A-Za-z0-9_.:-]*))\s*"
)
METRIC_HELP = ("generated, committed, stored, duplicated, duplicates, recovered, buffered, "
               "evicted, lost, unexpected, reordered, quarantined, cause.<cause>, "
               "evicted.<reason>, quarantined.<reason>, latency.p50|p90|p99|max, backlog_latency.<q>, "
               "hwm.outbox|outbox_device|broker|broker_over_outbox, broker.dropped, drain.max, forged, "
               "sent, resent, resent.<reason>, amplification, fidelity.lag, faithful, "
               "window.<id>.lost|drain|cause.<cause>, episodes, episodes_live|late|seen|lost|"
               "buffered|unanalysed|missed|unrecorded, false_alarms (each also .af|.brady|.tachy|.pause), "
               "episode_delay.p50|p99|max, beats.se|ppv, beats.<artifact or clean>.se|ppv, "
               "episode_se|episode_ppv.<kind>")


@dataclass(frozen=True)
class Expectation:
    metric: str
    op: str
    value: float
    text: str = ""
    other: str | None = None  # a measure on the right instead of a number ("episodes_seen = episodes")

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ExpectationError(f"unknown comparison {self.op!r} in {self.text!r}")
        for name in (self.metric, self.other):
            if name is not None and not METRICS.fullmatch(name):
                hint = ""
                if name.startswith("cause.") or ".cause." in name:
                    hint = f"; causes are {', '.join(CAUSES)}"
                raise ExpectationError(f"unknown measure {name!r} in expectation "
                                       f"{self.text or self.metric!r}{hint}; known: {METRIC_HELP}")
        if not math.isfinite(self.value):
            raise ExpectationError(f"expectation {self.text!r} needs a finite number")
        if not self.text:
            rhs = self.other if self.other is not None else _fmt(self.value)
            object.__setattr__(self, "text", f"{self.metric} {self.op} {rhs}")

    @property
    def window_id(self) -> str | None:
        return self.metric.split(".")[1] if self.metric.startswith("window.") else None

    def holds(self, actual: float) -> bool:
        return bool(_OPS[self.op](actual, self.value))


def parse_expectation(text: str) -> Expectation:
    """'lost = 0', 'lost>0', 'stored >= 100', 'cause.broker-queue-overflow > 0', ..."""
    if not isinstance(text, str):
        raise ExpectationError(f"an expectation is a string like \"lost = 0\", not {text!r}")
    m = _EXPECTATION.fullmatch(text)
    if m is None:
        raise ExpectationError(f"bad expectation {text!r}: write <measure> <op> <number>, "
                               f"e.g. \"lost = 0\" or \"cause.broker-queue-overflow > 0\" "
                               f"(op: = != < <= > >=)")
    if m["duration"] is not None:
        try:
            value = parse_duration(m["duration"], allow_zero=True)
        except ConfigError as exc:
            raise ExpectationError(f"bad expectation {text!r}: {exc}") from None
        return Expectation(m["metric"], m["op"], value, text.strip())
    if m["other"] is not None:
        return Expectation(m["metric"], m["op"], 0.0, text.strip(), other=m["other"])
    return Expectation(m["metric"], m["op"], float(m["value"]), text.strip())


def _fmt(x: float | None) -> str:
    if x is None:
        return "undefined"
    if math.isinf(x):
        return "never" if x > 0 else "-inf"
    return str(int(x)) if float(x).is_integer() else f"{x:.3f}"


def verdict(result: CheckResult, expectations: Iterable[Expectation | str]) -> tuple[bool, list[str]]:
    """(all hold, one line per expectation: "ok   lost = 0  (lost = 0)" or "FAIL ...")."""
    metrics = result.metrics()
    ok, lines = True, []
    for e in expectations:
        exp = parse_expectation(e) if isinstance(e, str) else e
        if exp.other is not None:
            actual, other = metrics.get(exp.metric), metrics.get(exp.other)
            holds = actual is not None and other is not None and bool(_OPS[exp.op](actual, other))
            got = f"{exp.metric} = {_fmt(actual)}, {exp.other} = {_fmt(other)}"
        elif exp.metric in metrics:
            actual = metrics[exp.metric]
            holds = actual is not None and exp.holds(actual)
            got = f"{exp.metric} = {_fmt(actual)}"
            if exp.metric.startswith("episode_delay.") and actual is not None:
                got += f" s = {actual / 3600:.1f} h"
        elif exp.window_id is not None:
            holds, got = False, f"no fault window {exp.window_id!r} in the history"
        else:  # a cause or eviction reason that never happened counts as 0
            holds, got = exp.holds(0.0), f"{exp.metric} = 0"
        if exp.metric == "lost" and result.totals.lost and not holds:
            got += " (" + ", ".join(f"{c} {n}" for c, n in result.totals.lost_by_cause.items() if n) + ")"
        ok &= holds
        lines.append(f"{'ok  ' if holds else 'FAIL'}  {exp.text}   ({got})")
    return ok, lines
