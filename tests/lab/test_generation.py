"""lab/checker/generation.py: chunks a continuous device never generated are found, outside
the devices' own fault windows, and make a judged run unfaithful."""

from __future__ import annotations

from lab.checker import check
from lab.checker.generation import skipped_chunks
from lab.history import FaultWindow, Generated, History, Patient

T0 = 1_688_947_200.0


def history(caps: list[float], recording: str = "continuous",
            faults: tuple[FaultWindow, ...] = ()) -> History:
    gens = [Generated(c + 1.0, "hc-0000", 1, seq, c) for seq, c in enumerate(caps)]
    entry = {"recording": recording, "chunk_seconds": 1.0}
    return History(device_events=gens, faults=faults,
                   patients={"hc-0000": Patient("hc-0000", reading_s=1.0, entry=entry)})


def test_a_jump_in_capture_time_between_consecutive_seqs_is_skipped_chunks() -> None:
    caps = [T0 + i for i in range(10)] + [T0 + 30 + i for i in range(10)]  # 20 chunks missing
    s = skipped_chunks(history(caps), [])
    assert (s.count, s.first_at, s.generated) == (20, T0 + 9, 20)
    assert skipped_chunks(history([T0 + i for i in range(20)]), []).count == 0
    assert skipped_chunks(history(caps, recording="strip"), []).count == 0  # strips are apart by design
    frozen = FaultWindow("freeze", "stop", "devices", T0 + 9.5, T0 + 29)
    assert skipped_chunks(history(caps), [frozen]).count == 0  # the fault's doing


def test_a_judged_run_with_skipped_chunks_is_unfaithful() -> None:
    caps = [T0 + i for i in range(10)] + [T0 + 30 + i for i in range(10)]
    res = check(history(caps), max_lag_s=1e9)
    f = res.fidelity
    assert f.faithful is False and "20 chunks never generated" in f.reasons[-1], f.reasons
    assert f.speed_factor is not None and f.speed_factor < 0.7 * 0.51
    assert check(history([T0 + i for i in range(20)]), max_lag_s=1e9).fidelity.faithful is True
