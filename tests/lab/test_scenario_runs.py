"""Shipped scenarios, compressed, reach their expected verdicts against the real stack.

Each run is `ecgpipe scenario run NAME --json` in its own process with its own stack (free
ports, its own state dirs). A run spends most of its time waiting for simulated time to pass,
so the module starts every run at once, a few at a time (RunPool), and each test waits for
the runs it checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab.checker.fidelity import MARGIN

pytestmark = [pytest.mark.broker, pytest.mark.slow]

# Continuous-mode scenarios compress less: each device makes `speed / chunk` readings per real
# second. 10 devices, 5-s chunks and 60x keep every variant near 30-60 real seconds.
CONTINUOUS = ("--devices", "10", "--chunk-seconds", "5", "--speed", "60")
# 200 strip-mode monitors: still more outage strips than the broker queue holds
CARDIOCOMM = ("--devices", "200")
HERD = ("--devices", "20", "--speed", "30")
BLACKHOLE = ("--chunk-seconds", "2", "--speed", "20")
REALTIME = str(Path(__file__).parent / "data" / "realtime-check.toml")
SLOW_DRAIN = str(Path(__file__).parent / "data" / "slow-drain.toml")
OVERLOAD = str(Path(__file__).parent / "data" / "overload.toml")
DURABILITY = ("mosquitto-default", "mosquitto-autosave-1s", "end-to-end")
PARALLEL = 5  # runs at once: each is mostly idle, waiting for simulated time


@dataclass(frozen=True)
class Run:
    rc: int
    doc: dict
    stderr: str
    out: Path

    def variant(self, name: str) -> dict:
        assert name in self.doc, (name, sorted(self.doc), self.stderr[-3000:])
        return self.doc[name]

    def ledger(self, variant: str) -> list[dict]:
        return [json.loads(line) for line in (self.out / variant / "ledger.jsonl").read_text().splitlines()]


JOBS: dict[str, tuple[str, ...]] = {
    # the longest first. The crash loop runs at 20x: five 10-s ingest restarts are a process
    # start and a resume spread of real seconds each, which at 60x outgrow their windows'
    # drain allowance (lab/checker/fidelity.py) and the run is rightly not faithful
    **{f"crash-{v}": ("ingest-crash-loop", "--devices", "10", "--chunk-seconds", "5", "--speed", "20",
                      "--variant", v)
       for v in ("fire-and-forget", "broker-ack", "end-to-end")},
    **{f"realtime-1x-{v}": (REALTIME, "--speed", "1", "--variant", v) for v in ("end-to-end", "broker-ack")},
    "slow-drain": (SLOW_DRAIN, "--speed", "1"),
    # 20,000 readings a real second asked of a stack that carries a few thousand. Early, while
    # the machine is busy: run last, on a quiet machine, it kept its lag under max_lag (835 s of
    # 2,000) and was unfaithful for another reason
    "unfaithful": (OVERLOAD, "--speed", "200"),
    "cardiocomm-slow-e2e": ("cardiocomm-72h", *CARDIOCOMM, "--speed", "4000", "--variant", "end-to-end"),
    "cardiocomm-slow-ba": ("cardiocomm-72h", *CARDIOCOMM, "--speed", "4000", "--variant", "broker-ack"),
    "broker-restart-no-persistence": ("broker-restart-no-persistence", *CONTINUOUS),
    # 20 simulated minutes at 20x: the 7-min freeze is 21 real s, its 30-s (simulated) keepalive 2 s
    "ingest-freeze": ("ingest-freeze-broker-restart", "--devices", "10", "--speed", "20"),
    "device-reboot": ("device-reboot", *CONTINUOUS),
    "cardiocomm": ("cardiocomm-72h", *CARDIOCOMM, "--speed", "20000"),
    # 30 simulated minutes of 12 continuous monitors at 30x: a minute of real time
    "artifacts": ("ambulatory-artifacts", "--speed", "30"),
    **{f"herd-{v}": ("thundering-herd", *HERD, "--variant", v)
       for v in ("herd", "backoff-jitter", "paced", "end-to-end")},
    **{f"blackhole-{v}": ("blackhole-vs-cut", *BLACKHOLE, "--variant", v)
       for v in ("fire-and-forget", "broker-ack", "end-to-end")},
    **{f"realtime-30x-{v}": (REALTIME, "--speed", "30", "--variant", v)
       for v in ("end-to-end", "broker-ack")},
    # broker kill -9 with each snapshot setting (issue 13), at 20x
    **{f"durability-{v}": ("broker-durability", "--devices", "10", "--chunk-seconds", "5", "--speed", "20",
                           "--variant", v) for v in DURABILITY},
    # three ingest workers, one crashing, one away 10 min (issue 13), at 20x
    **{f"workers-{v}": ("worker-crash", "--devices", "10", "--chunk-seconds", "5", "--speed", "20",
                        "--variant", v) for v in ("broker-ack", "end-to-end")},
    # The NATS cluster's scenarios last: run first, beside the longest Mosquitto runs and the other
    # test files' start, they made the machine too busy to follow (CI: nats-partition and
    # cardiocomm end-to-end unfaithful). broker-durability-nats's end-to-end runs at 10x: every
    # ack a round trip through the cluster, it was once unfaithful at 20x on the loaded CI runner
    # (rc 3 with lost 0 and buffered 0); its broker-ack variant passes at 20x
    "durability-nats-broker-ack": ("broker-durability-nats", "--devices", "10", "--chunk-seconds", "5",
                                   "--speed", "20", "--variant", "broker-ack"),
    "durability-nats-end-to-end": ("broker-durability-nats", "--devices", "10", "--chunk-seconds", "5",
                                   "--speed", "10", "--variant", "end-to-end"),
    # one node partitioned from the other two, the stream leader and then a follower (issue 13),
    # 12 simulated minutes at 10x: 72 real seconds a variant
    **{f"nats-partition-{v}": ("nats-partition", "--devices", "10", "--chunk-seconds", "5",
                               "--speed", "10", "--variant", v) for v in ("broker-ack", "end-to-end")},
    # issue 12's attack scenarios, secure and insecure, at 20x (10 devices, 5-s chunks)
    **{f"attack-{name}": (name, "--speed", "20")
       for name in ("stolen-device-credentials", "injection-during-outage", "forged-acks")},
}


def _run(out: Path, name: str, *args: str) -> Run:
    res = subprocess.run([sys.executable, "-m", "lab.cli", "scenario", "run", name, "--out", str(out),
                          "--json", *args], capture_output=True, text=True, timeout=900, check=False,
                         env={**os.environ, "ECGPIPE_STATE_DIR": ""})
    doc = json.loads(res.stdout) if res.stdout.strip().startswith("{") else {}
    return Run(res.returncode, doc, res.stderr, out)


class RunPool:
    def __init__(self, root: Path) -> None:
        self._ex = ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="scenario")
        self._futures: dict[str, Future[Run]] = {
            job: self._ex.submit(_run, root / job, *args) for job, args in JOBS.items()}

    def get(self, job: str) -> Run:
        return self._futures[job].result()

    def close(self) -> None:
        self._ex.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunPool]:
    pool = RunPool(tmp_path_factory.mktemp("scenario-runs"))
    yield pool
    pool.close()


def balanced(rep: dict) -> bool:
    t = rep["check"]["totals"]
    return t["generated"] > 0 and t["generated"] == t["stored"] + t["buffered"] + t["evicted"] + t["lost"]


def passed(run: Run) -> None:
    assert run.doc, run.stderr[-3000:]
    for variant, rep in run.doc.items():
        assert rep["ok"], (variant, rep["verdict"])
        assert balanced(rep), variant
    assert run.rc == 0


def essence(rows: list[dict]) -> list[tuple]:
    """A ledger without what depends on real timing (duplicates, recovered)."""
    return [(r["dev"], r["boot"], r["seq"], r["captured_at"], r["outcome"], r.get("cause")) for r in rows]


def test_a_bad_scenario_file_is_refused_before_anything_starts(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('description = "x"\nduration = "1h"\nseed = 1\nexpect = ["lost = 0"]\n\n'
                   '[fleet]\ndevices = 3\noutbox_capacity = -5\n')
    res = subprocess.run([sys.executable, "-m", "lab.cli", "scenario", "run", str(bad), "--out",
                          str(tmp_path / "out")], capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode != 0
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "line 8" in lines[0] and "outbox_capacity" in lines[0], res.stderr
    assert not (tmp_path / "out").exists()


def test_cardiocomm_72h_compressed_in_all_three_modes(runs: RunPool) -> None:
    # 96 simulated hours at 20,000x: under 20 real seconds a mode
    run = runs.get("cardiocomm")
    assert set(run.doc) == {"fire-and-forget", "broker-ack", "end-to-end"}, run.stderr[-2000:]
    passed(run)
    for mode in run.doc:
        for fig in ("timeline.png", "gaps.png", "strip.png", "report.json", "ledger.jsonl"):
            assert (run.out / mode / fig).stat().st_size > 1000, (mode, fig)
    e2e, back = run.variant("end-to-end")["check"]["totals"], run.variant("broker-ack")["check"]
    assert e2e["lost"] == 0 and e2e["generated"] >= 200 * 3 * 3  # three strips a day, four days
    assert back["totals"]["lost_by_cause"]["broker-queue-overflow"] > 0
    rep = run.variant("broker-ack")
    for key in ("latency_s", "backlog_latency_s", "backlog", "windows", "broker"):
        assert key in rep["check"], key
    assert "reordered" in rep["check"]["totals"]
    assert all("outbox_drain_s" in w and "broker_drain_s" in w for w in rep["check"]["windows"])
    assert rep["check"]["backlog"]["outbox_hwm"] >= 0 and rep["check"]["backlog"]["broker_hwm"] > 0
    assert rep["stack"]["cohorts"], "the scenario's patient profiles reach the fleet"


def test_cardiocomm_72h_says_what_each_mode_did_to_the_af_episodes(runs: RunPool) -> None:
    # 60 of the 200 monitors are AF surveillance, each with three 6-h AF episodes during the
    # outage (at 12 h, 36 h and 60 h), each held by exactly one of its strips
    run = runs.get("cardiocomm")
    passed(run)
    clin = {mode: run.variant(mode)["check"]["clinical"] for mode in run.doc}
    for mode, c in clin.items():
        assert c["totals"]["episodes"] == 3 * 60 and c["totals"]["unrecorded"] == 0, (mode, c["totals"])
        assert list(c["by_kind"]) == ["af"], (mode, c["by_kind"])
    # fire-and-forget: not one of them reaches a clinician
    ff = clin["fire-and-forget"]
    assert ff["totals"]["seen"] == 0 and ff["lost_by_cause"] == {"qos0-link-down": 180}, ff["lost_by_cause"]
    # broker-ack: those whose strips fit in the broker's queue (the outage's first ~39 h at
    # 200 devices), days late; the last ones were dropped with the queue's overflow
    ba = clin["broker-ack"]["totals"]
    assert ba["seen"] >= 60 and ba["lost"] >= 60 and ba["seen"] + ba["lost"] == 180, ba
    assert clin["broker-ack"]["lost_by_cause"] == {"broker-queue-overflow": ba["lost"]}
    assert ba["live"] == 0 and ba["missed"] == 0
    # end-to-end: every one, each as late as the outage made it (the first ones ~72 h)
    e2e = clin["end-to-end"]
    assert e2e["totals"]["seen"] == 180 and e2e["totals"]["late"] == 180, e2e["totals"]
    assert 66 * 3600 <= e2e["delay_s"]["max"] <= 90 * 3600, e2e["delay_s"]
    assert e2e["delay_s"]["p50"] < e2e["delay_s"]["max"]  # the later episodes waited less
    assert e2e["totals"]["false_alarms"] <= 5, e2e["false_alarms"]


EDGE_REAL_S = 0.25  # how blunt a fault's edge may be in real time on this busy 2-core machine (seen: 0.19)


def test_the_cardiocomm_ledger_does_not_depend_on_the_speed(runs: RunPool) -> None:
    fast, slow = runs.get("cardiocomm"), runs.get("cardiocomm-slow-e2e")
    passed(slow)
    assert fast.variant("end-to-end")["speed"] == 20000 and slow.variant("end-to-end")["speed"] == 4000

    a, b = essence(fast.ledger("end-to-end")), essence(slow.ledger("end-to-end"))
    assert len(a) >= 200 * 3 * 3 and a == b  # the same strips, seqs, capture times and outcomes
    # broker-ack: which readings the full queue drops depends on the outage's edges, which are
    # only as sharp as real time allows: the proxy's 10-ms poll and ingest's reconnect (within
    # 0.1 s) are, on a busy machine (the pool runs several stacks at once), up to EDGE_REAL_S
    # each: EDGE_REAL_S x 20,000 simulated seconds, i.e. that many seconds of the fleet's strips
    # per edge. The ledgers must agree but for those: the allowance is counted from this
    # ledger's own strip rate, so it follows the scenario's fleet.
    ba_fast, ba_slow = fast.ledger("broker-ack"), runs.get("cardiocomm-slow-ba").ledger("broker-ack")
    assert [r["seq"] for r in ba_fast] == [r["seq"] for r in ba_slow]
    caps = [r["captured_at"] for r in ba_fast]
    per_edge = len(caps) / (max(caps) - min(caps)) * EDGE_REAL_S * 20_000
    lost_fast = sum(r["outcome"] == "lost" for r in ba_fast)
    lost_slow = sum(r["outcome"] == "lost" for r in ba_slow)
    assert lost_slow > 0 and abs(lost_fast - lost_slow) <= 2 * per_edge, (lost_fast, lost_slow, per_edge)
    differ = sum(essence([x]) != essence([y]) for x, y in zip(ba_fast, ba_slow, strict=True))
    assert differ <= 3 * per_edge, (differ, per_edge, len(caps))


def test_a_compressed_run_keeps_the_ledger_of_a_real_time_run(runs: RunPool) -> None:
    # the same 2-minute scenario and seed at --speed 1 and at --speed 30
    e2e_1x, e2e_30x = runs.get("realtime-1x-end-to-end"), runs.get("realtime-30x-end-to-end")
    passed(e2e_1x)
    passed(e2e_30x)
    a, b = essence(e2e_1x.ledger("end-to-end")), essence(e2e_30x.ledger("end-to-end"))
    assert len(a) == 5 * 120 // 2 - 4 and a == b  # every chunk that ends by 2 min, the same fate
    ba_1x, ba_30x = runs.get("realtime-1x-broker-ack"), runs.get("realtime-30x-broker-ack")
    passed(ba_1x)
    passed(ba_30x)
    a, b = essence(ba_1x.ledger("broker-ack")), essence(ba_30x.ledger("broker-ack"))
    assert [r[:4] for r in a] == [r[:4] for r in b]  # the same readings, captured at the same times
    lost_a, lost_b = sum(r[4] == "lost" for r in a), sum(r[4] == "lost" for r in b)
    # a few readings a device: one tick's worth at the queue-full moment and one at the heal; a
    # 0.1-s tick is 3 simulated s at 30x, more when the loaded suite delays it (seen: 13 apart
    # over 5 devices). Where they may differ is pinned down below.
    assert lost_a >= 60 and abs(lost_a - lost_b) <= 20, (lost_a, lost_b)
    # Which readings the full queue drops depends on arrival order: at 30x one 0.1-s fleet tick
    # is 3 simulated seconds, whose readings go out in device order, not time order. So the
    # fates may differ only near the cut's edges and near the moment the queue filled.
    origin = 1_688_947_200.0
    pivots = [origin + 40, origin + 80] + [min(r[3] for r in rows if r[4] == "lost") for rows in (a, b)]
    for x, y in zip(a, b, strict=True):
        if x != y:
            assert min(abs(x[3] - p) for p in pivots) <= 8.0, (x, y, pivots)


@pytest.mark.parametrize("name", ["broker-restart-no-persistence", "device-reboot"])
def test_continuous_scenarios_compressed(runs: RunPool, name: str) -> None:
    run = runs.get(name)
    passed(run)
    if name == "broker-restart-no-persistence":
        causes = run.variant("no-persistence")["check"]["totals"]["lost_by_cause"]
        assert causes["broker-restart-no-persistence"] > 0
        assert run.variant("persistence")["check"]["totals"]["lost"] == 0
    else:
        assert run.variant("end-to-end")["check"]["totals"]["lost"] == 0
        assert run.variant("broker-ack")["check"]["totals"]["lost_by_cause"]["broker-queue-overflow"] > 0


@pytest.mark.parametrize("name", ["stolen-device-credentials", "injection-during-outage", "forged-acks"])
def test_attack_scenarios_secure_and_insecure(runs: RunPool, name: str) -> None:
    run = runs.get(f"attack-{name}")
    passed(run)
    secure, insecure = run.variant("secure")["check"], run.variant("insecure")["check"]
    assert secure["totals"]["lost"] == 0 and secure["forged"] == [] and secure["unexpected"] == []
    if name == "forged-acks":  # the devices believed the forgeries and let go of what they held
        assert insecure["totals"]["lost"] == insecure["totals"]["lost_by_cause"]["forged-ack"] > 0
    else:  # the victim's next readings as the forger made them, the genuine ones refused
        assert insecure["forged"] and insecure["totals"]["quarantined_by_reason"].get("conflict", 0) > 0


def test_ingest_crash_loop_loses_only_qos0(runs: RunPool) -> None:
    for v in ("fire-and-forget", "broker-ack", "end-to-end"):
        passed(runs.get(f"crash-{v}"))
    ff = runs.get("crash-fire-and-forget").variant("fire-and-forget")["check"]
    assert ff["totals"]["lost"] == ff["totals"]["lost_by_cause"]["qos0-link-down"] > 0
    crashes = {w["id"] for w in ff["windows"]}
    assert crashes == {f"crash-{i}" for i in range(1, 6)}
    assert sum(w["lost"] for w in ff["windows"]) == ff["totals"]["lost"]  # every loss in a crash
    for v in ("broker-ack", "end-to-end"):
        t = runs.get(f"crash-{v}").variant(v)["check"]["totals"]
        assert t["lost"] == 0 and t["stored"] > 0


def test_thundering_herd_drops_for_an_online_subscriber_and_the_fixes_work(runs: RunPool) -> None:
    for v in ("herd", "backoff-jitter", "paced", "end-to-end"):
        passed(runs.get(f"herd-{v}"))
    herd = runs.get("herd-herd").variant("herd")["check"]
    assert herd["totals"]["lost"] == herd["totals"]["lost_by_cause"]["broker-queue-overflow"] > 0
    # ingest was never down: its only fault is the slow line. Drops of readings published
    # before ingest received anything after the heal belong to the outage, the rest to the line
    lost = {w["id"]: w["lost"] for w in herd["windows"]}
    assert set(lost) == {"slow-ingest", "outage"} and sum(lost.values()) == herd["totals"]["lost"]
    assert lost["slow-ingest"] > 0
    assert herd["broker"]["dropped"] >= herd["totals"]["lost"]
    paced = runs.get("herd-paced").variant("paced")["check"]
    e2e = runs.get("herd-end-to-end").variant("end-to-end")["check"]
    assert paced["totals"]["lost"] == 0 and paced["broker"]["dropped"] == 0
    # (not the queue's high-water marks: $SYS reports once a second, and at 30x the herd's
    # full queue can come and go between two reports; the dropped counter misses nothing)
    # end-to-end: whatever the broker drops is sent again (with 20 devices the 50-reading
    # window even keeps the flush within the queue: 1,000 in flight at most)
    assert e2e["totals"]["lost"] == 0 and e2e["totals"]["evicted"] == 0
    assert runs.get("herd-paced").variant("paced")["stack"]["backlog_pace"] == pytest.approx(0.75)


def test_a_frozen_ingest_and_a_broker_restart_cost_end_to_end_a_few_copies_not_a_flood(
        runs: RunPool) -> None:
    run = runs.get("ingest-freeze")
    passed(run)
    ba = run.variant("broker-ack")["check"]
    assert ba["totals"]["lost_by_cause"]["broker-restart-no-persistence"] > 0
    e2e = run.variant("end-to-end")["check"]
    assert e2e["totals"]["lost"] == 0 and e2e["totals"]["evicted"] == 0
    cost = e2e["cost"]
    # the broker's restart showed in the devices' CONNACK or in ingest's new session: what was
    # in flight went again (if anything was: how much the broker held depends on how soon it
    # published ingest's Last Will; tests/lab/test_resend_recovery.py makes sure it held some),
    # and apart from a probe or so a device, nothing else did
    lost_and_found = cost["resent_by_reason"].get("session-lost", 0) + \
        cost["resent_by_reason"].get("ingest-session-lost", 0)
    assert cost["resent"] <= lost_and_found + 2 * 10, cost
    assert cost["amplification"] <= 1.2 and cost["broker_over_outbox"] <= 1.2, cost


E2E_JOBS = ("cardiocomm", "artifacts", "broker-restart-no-persistence", "device-reboot", "crash-end-to-end",
            "herd-end-to-end", "blackhole-end-to-end", "ingest-freeze", "realtime-1x-end-to-end")


@pytest.mark.parametrize("job", E2E_JOBS)
def test_every_end_to_end_variant_loses_nothing_without_a_flood(runs: RunPool, job: str) -> None:
    """lost = 0; copies sent / readings generated <= 1.2; the broker's backlog peak no more than
    1.2 times what the device outboxes held at that moment."""
    run = runs.get(job)
    rep = run.variant("end-to-end")["check"]
    cost = rep["cost"]
    assert rep["totals"]["lost"] == 0, rep["totals"]
    assert cost["amplification"] is not None and cost["amplification"] <= 1.2, cost
    if rep["backlog"]["broker_hwm"]:  # a broker peak above its baseline
        assert cost["broker_over_outbox"] is not None and cost["broker_over_outbox"] <= 1.2, \
            (cost, rep["backlog"])


def test_artifacts_lower_the_beat_scores_each_by_its_own_label(runs: RunPool) -> None:
    """ambulatory-artifacts: the EC57 beat scores per artifact, against the generator's beats.
    Clean signal above 99 %; a lead-off has no beats to find; every scheduled artifact is
    scored under its own label; the AF episode under motion and EMG is still seen."""
    run = runs.get("artifacts")
    passed(run)
    rep = run.variant("end-to-end")["check"]
    beats = rep["ec57"]["beats"]["by_artifact"]
    assert {"clean", "motion", "emg", "wander", "mains", "lead-off"} <= set(beats), sorted(beats)
    assert beats["clean"]["se"] >= 0.99 and beats["clean"]["ppv"] >= 0.99, beats["clean"]
    assert beats["lead-off"]["se"] < 0.5, beats["lead-off"]
    assert rep["clinical"]["by_kind"]["af"]["live"] + rep["clinical"]["by_kind"]["af"]["late"] == 3


def test_a_run_the_machine_could_not_follow_is_unfaithful_never_a_pass(runs: RunPool) -> None:
    run = runs.get("unfaithful")
    assert run.rc == 3, (run.rc, run.stderr[-2000:])  # UNFAITHFUL's own exit code
    rep = run.variant("default")
    assert rep["outcome"] == "UNFAITHFUL" and rep["ok"] is False
    assert rep["check"]["totals"]["lost"] == 0  # its expectation held: not what decides here
    fid = rep["check"]["fidelity"]
    # unfaithful whatever the reason: behind by more than max_lag, or a backlog that did not drain
    # in time (seen since ingest drains as fast as bare paho: the lag stayed under max_lag)
    assert fid["faithful"] is False and fid["reasons"], fid
    assert rep["advice"] and "--speed" in rep["advice"]
    suggested = float(rep["advice"].split("--speed ")[1].split()[0])
    # slower than the run by the measured shortfall (allowed / worst lag), with the margin: how
    # far behind the stack fell depends on the machine's load, so only the rule is fixed here
    shortfall = min(1.0, fid["max_lag_s"] / fid["lag_s"])
    assert suggested <= 200 * MARGIN * shortfall * 1.01 and suggested < 200 * MARGIN, rep["advice"]


def test_a_slow_but_steady_drain_is_waited_for_not_cut_off(runs: RunPool) -> None:
    run = runs.get("slow-drain")
    passed(run)
    rep = run.variant("default")
    assert rep["drain"]["ended"] == "delivered", rep["drain"]
    assert rep["drain"]["real_s"] > 20.0  # steps 12 s apart: the old 10-s rule stopped at the first
    assert rep["check"]["totals"]["buffered"] == 0 and rep["check"]["totals"]["stored"] >= 5


def test_blackhole_costs_what_keepalive_takes_to_notice(runs: RunPool) -> None:
    for v in ("fire-and-forget", "broker-ack", "end-to-end"):
        passed(runs.get(f"blackhole-{v}"))
    ff = runs.get("blackhole-fire-and-forget").variant("fire-and-forget")["check"]
    lost = {w["id"]: w["lost"] for w in ff["windows"]}
    # 20 devices, 2-s readings, a 2-s real keepalive at 20x = 40 s simulated: the blackhole is
    # noticed after 40-80 s, i.e. 20-40 readings a device; the cut at once. A busy machine adds
    # real seconds to the detection (seen: 68 readings a device, 6.8 real s, with the suite's
    # three workers beside the pool); what must not happen is a detection by TCP's own
    # timeouts, minutes of real time, tens of thousands of readings
    assert 20 * 15 <= lost["blackhole"] <= 20 * 100 and lost["cut"] <= 20
    assert ff["totals"]["lost"] == ff["totals"]["lost_by_cause"]["qos0-link-down"]


def test_a_dead_worker_of_three_costs_its_share_in_broker_ack_and_nothing_end_to_end(runs: RunPool) -> None:
    """worker-crash: Mosquitto keeps handing the dead worker its turn; past max_queued the
    broker drops its share after PUBACKing it. End to end, the devices re-send."""
    ba, e2e = runs.get("workers-broker-ack"), runs.get("workers-end-to-end")
    passed(ba)
    passed(e2e)
    ba_check = ba.variant("broker-ack")["check"]
    lost = ba_check["totals"]["lost"]
    by_cause = {k: v for k, v in ba_check["totals"]["lost_by_cause"].items() if v}
    assert lost > 0 and by_cause == {"broker-queue-overflow": lost}
    gone = {w["id"]: w["lost"] for w in ba_check["windows"]}["gone"]
    assert gone == lost  # all of it while ingest-3 was away; the 20-s crashes fit in its queue
    e2e_check = e2e.variant("end-to-end")["check"]
    assert e2e_check["totals"]["lost"] == 0 and e2e_check["totals"]["buffered"] == 0
    assert e2e_check["totals"]["stored"] == e2e_check["totals"]["generated"]


def test_broker_kill_9_losses_each_have_their_cause_and_window(runs: RunPool) -> None:
    """broker-durability: Mosquitto's default snapshot period loses what it PUBACKed since the
    start and, having no snapshot of ingest's session, what it PUBACKed after the restart; a
    1-s snapshot loses at most the last second; end to end loses nothing. All of it explained,
    all of it in the crash that caused it."""
    runs_ = {v: runs.get(f"durability-{v}") for v in DURABILITY}
    for run in runs_.values():
        passed(run)
    default = runs_["mosquitto-default"].variant("mosquitto-default")["check"]
    by_cause = {k: v for k, v in default["totals"]["lost_by_cause"].items() if v}
    assert set(by_cause) == {"broker-crash-before-snapshot", "broker-crash-lost-session"}, by_cause
    windows = {w["id"]: w["lost"] for w in default["windows"]}
    assert windows["crash-queueing"] == default["totals"]["lost"] > 0, windows
    fast = runs_["mosquitto-autosave-1s"].variant("mosquitto-autosave-1s")["check"]["totals"]
    assert fast["lost"] < default["totals"]["lost"] / 4, fast
    assert runs_["end-to-end"].variant("end-to-end")["check"]["totals"]["lost"] == 0


def test_the_nats_cluster_loses_nothing_where_mosquitto_lost_hundreds(runs: RunPool) -> None:
    """broker-durability-nats: the same timeline on the 3-node cluster (a node killed while it
    queues the outage, the stream leader killed twice): a PUBACK there is a quorum's copy."""
    for v in ("broker-ack", "end-to-end"):
        run = runs.get(f"durability-nats-{v}")
        passed(run)
        check = run.variant(v)["check"]
        assert check["totals"]["lost"] == 0 and check["totals"]["buffered"] == 0, check["totals"]
        assert {w["id"] for w in check["windows"]} >= {"node-queueing", "leader-draining", "leader-steady"}
    ba = runs.get("durability-nats-broker-ack").variant("broker-ack")
    assert ba["check"]["backlog"]["broker_hwm"] > 100, ba["check"]["backlog"]  # the cut queued at the cluster


def test_a_partitioned_nats_node_costs_re_sends_and_a_stall_never_a_reading(runs: RunPool) -> None:
    """nats-partition: the stream leader, then a follower (nats-1 again), cut off the other two
    for 3 minutes each. The isolated node has no quorum: its devices get no PUBACK and re-send
    to the majority (broker-ack) or hold their readings (end to end); nothing is lost."""
    for v in ("broker-ack", "end-to-end"):
        run = runs.get(f"nats-partition-{v}")
        passed(run)
        check = run.variant(v)["check"]
        assert check["totals"]["lost"] == 0 and check["totals"]["buffered"] == 0, check["totals"]
        windows = {w["id"]: w for w in check["windows"]}
        assert set(windows) == {"leader-cut-off", "follower-cut-off"}, windows
        assert {w["fault"] for w in windows.values()} == {"partition"}, windows
        assert check["cost"]["resent_by_reason"].get("no-puback", 0) > 0, check["cost"]
