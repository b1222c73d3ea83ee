"""Forged readings that were stored: the store holds a generated key, but not the reading the
device generated under it (its capture time differs). Pure.

    forged(ix) -> [Key]    sorted

A device never makes two readings with one key, so another capture time under a stored key
means someone else's reading got in first (an unsigned forgery in an `--insecure` stack, or a
device's stolen signing key); ingest then refuses the genuine one as a `conflict`. The
checker counts the key as stored (by key, as Jepsen's set checker does), so this list is what
says the store holds a forgery. A key stored but never generated is `unexpected` instead.
"""

from __future__ import annotations

from lab.checker.index import ReadingIndex
from lab.history.events import Key

TOLERANCE_S = 1e-3  # the wire format keeps microseconds; anything beyond rounding is another reading


def forged(ix: ReadingIndex) -> list[Key]:
    out = []
    for key, stored in ix.stored.items():
        gen = ix.gens.get(key)
        if gen is not None and gen.cap is not None and abs(stored.captured_at - gen.cap) > TOLERANCE_S:
            out.append(key)
    return sorted(out)
