"""The clinical section on hand-made histories: each episode live, late, lost (with its cause),
buffered, missed or unrecorded; false alarms; the event rules; the expectation terms."""

from __future__ import annotations

import pytest

from lab.checker import ExpectationError, check, parse_expectation, verdict
from lab.checker.clinical import LIVE_SLACK_S, Clinical, clinical, episode_kind, qualifies
from lab.checker.result import OVERFLOW, QOS0, ReadingOutcome
from lab.history import (
    ClinicalEvent,
    FaultWindow,
    Generated,
    History,
    Key,
    Patient,
    Stored,
    TruthSegment,
    parse_device_events,
    parse_truth,
)
from lab.report.summary import clinical_headline

T0 = 1_688_947_200.0
STRIP = 30.0


def strips(dev: str, caps: list[float], fates: list[str], cause: str | None = None,
           ) -> tuple[list[Generated], list[Stored], dict[Key, ReadingOutcome]]:
    """One 30-s reading per capture time, each with its fate (stored | buffered | evicted | lost)."""
    gens, stored, outcomes = [], [], {}
    for seq, (cap, fate) in enumerate(zip(caps, fates, strict=True)):
        key = (dev, 1, seq)
        gens.append(Generated(cap + STRIP, dev, 1, seq, cap))
        if fate == "stored":
            stored.append(Stored(cap + STRIP + 5, dev, 1, seq, cap, duration_s=STRIP))
        outcomes[key] = ReadingOutcome(
            key, fate, cause=cause if fate == "lost" else None,
            reason="outbox-full:drop-oldest" if fate == "evicted" else None)
    return gens, stored, outcomes


def af(dev: str, start: float, end: float | None, episode: bool = True) -> TruthSegment:
    return TruthSegment(dev, "rhythm", "af-episode" if episode else "af", start, end, episode)


def event(dev: str, onset: float, raised: float, kind: str = "af") -> ClinicalEvent:
    return ClinicalEvent(dev, kind, onset, raised, onset + STRIP)


def history(parts: list[tuple[list[Generated], list[Stored], dict[Key, ReadingOutcome]]],
            truth: list[TruthSegment], events: list[ClinicalEvent],
            patients: dict[str, Patient] | None = None) -> tuple[History, dict[Key, ReadingOutcome]]:
    outcomes: dict[Key, ReadingOutcome] = {}
    gens: list[Generated] = []
    stored: list[Stored] = []
    for g, s, o in parts:
        gens += g
        stored += s
        outcomes.update(o)
    return History(device_events=gens, stored=stored, truth=truth, clinical_events=events,
                   patients=patients or {}), outcomes


def test_an_episode_raised_within_a_minute_of_its_strip_is_live_and_a_later_one_is_late() -> None:
    h, o = history([strips("a", [T0 + 100], ["stored"]), strips("b", [T0 + 100], ["stored"])],
                   [af("a", T0 + 90, T0 + 1300), af("b", T0 + 90, T0 + 1300)],
                   [event("a", T0 + 100, T0 + 100 + STRIP + 20),
                    event("b", T0 + 100, T0 + 100 + 72 * 3600)])
    c = clinical(h, o)
    by = {e.dev: e for e in c.episodes}
    assert by["a"].outcome == "live" and by["a"].delay_s == pytest.approx(STRIP + 20)
    assert by["b"].outcome == "late" and by["b"].delay_s == pytest.approx(72 * 3600)
    assert by["b"].onset == T0 + 100  # the first moment a reading held it, not the episode's start
    assert c.counts()["seen"] == 2 and c.counts()["episodes"] == 2
    assert c.delay.max == pytest.approx(72 * 3600)


def test_the_live_bound_is_a_minute_plus_one_reading() -> None:
    bound = LIVE_SLACK_S + STRIP
    h, o = history([strips("a", [T0], ["stored"]), strips("b", [T0], ["stored"])],
                   [af("a", T0, T0 + 600), af("b", T0, T0 + 600)],
                   [event("a", T0, T0 + bound), event("b", T0, T0 + bound + 1)])
    assert {e.dev: e.outcome for e in clinical(h, o).episodes} == {"a": "live", "b": "late"}


def test_the_machines_time_after_the_last_fault_counts_at_real_seconds() -> None:
    # a 72-h outage healed at T0 + 72 h; at 20,000x, ingest and the analysis spent 40 real
    # seconds after the heal, which the run's clock shows as 800,000 s (9 days)
    heal = T0 + 72 * 3600
    h, o = history([strips("a", [T0 + 100], ["stored"]), strips("b", [heal + 600], ["stored"])],
                   [af("a", T0 + 90, T0 + 1300), af("b", heal + 590, heal + 1800)],
                   [event("a", T0 + 100, heal + 800_000),
                    event("b", heal + 600, heal + 600 + STRIP + 800_000)])
    h = History(device_events=h.device_events, stored=h.stored, truth=h.truth,
                clinical_events=h.clinical_events, faults=[FaultWindow("outage", "cut", "ingest", T0, heal)])
    by = {e.dev: e for e in clinical(h, o, machine_scale=1 / 20000).episodes}
    assert by["a"].delay_s == pytest.approx(72 * 3600 - 100 + 40)
    assert by["a"].delay_raw_s == pytest.approx(72 * 3600 - 100 + 800_000)
    # after the fault, from the end of its strip: 30 s of capture and 40 real seconds: live
    assert by["b"].delay_s == pytest.approx(STRIP + 40) and by["b"].outcome == "live"
    assert clinical(h, o).episodes[0].delay_s == by["a"].delay_raw_s  # a real-time run: as seen
    # the outage's share of a's delay is 72 h less 100 s; the pipeline's own, once it could
    # arrive (the heal), is the 40 real seconds; only late episodes count in the summary's wait
    c = clinical(h, o, machine_scale=1 / 20000)
    assert by["a"].wait_s == pytest.approx(40) and c.wait.max == pytest.approx(40)
    assert c.as_dict()["wait_s"]["max"] == pytest.approx(40)
    from lab.report.summary import clinical_headline
    assert "all late" not in clinical_headline(c.as_dict())  # b was live
    assert "each raised within 40 s of when it could arrive" in clinical_headline(c.as_dict())


def test_an_undetected_episode_is_blamed_on_what_happened_to_its_readings() -> None:
    h, o = history([strips("lost", [T0, T0 + 400], ["lost", "stored"], cause=OVERFLOW),
                    strips("evicted", [T0], ["evicted"]),
                    strips("buffered", [T0, T0 + 400], ["buffered", "lost"], cause=QOS0),
                    strips("missed", [T0, T0 + 400], ["stored", "stored"])],
                   [af(d, T0 - 10, T0 + 600) for d in ("lost", "evicted", "buffered", "missed")], [])
    c = clinical(h, o)
    got = {e.dev: (e.outcome, e.cause) for e in c.episodes}
    assert got == {"lost": ("lost", OVERFLOW), "evicted": ("lost", "evicted"),
                   "buffered": ("buffered", None), "missed": ("missed", None)}
    assert c.lost_by_cause() == {OVERFLOW: 1, "evicted": 1}
    assert c.counts() == {"episodes": 4, "live": 0, "late": 0, "lost": 2, "buffered": 1, "missed": 1,
                          "unanalysed": 0, "unrecorded": 0, "seen": 0, "false_alarms": 0}


def test_stored_readings_the_analysis_had_not_reached_are_no_detector_miss() -> None:
    """The analysis stage walks the store in order; if the run ends before it reaches the
    readings holding an episode, the episode is `unanalysed` (the machine was behind), and a
    judged run is not faithful, with a slower speed in proportion to what was analysed."""
    h, o = history([strips("late", [T0, T0 + 400], ["stored", "stored"]),
                    strips("missed", [T0, T0 + 400], ["stored", "stored"])],
                   [af(d, T0 - 10, T0 + 600) for d in ("late", "missed")], [])
    h = History(device_events=h.device_events, stored=h.stored, truth=h.truth,
                unanalysed=frozenset({("late", 1, 1)}))
    c = clinical(h, o)
    assert {e.dev: e.outcome for e in c.episodes} == {"late": "unanalysed", "missed": "missed"}
    assert "1 not analysed (the analysis stage was behind)" in clinical_headline(c.as_dict())
    res = check(h, ["episodes_missed = 1", "episodes_unanalysed = 1"], max_lag_s=1e9)
    assert res.ok, res.verdict_lines
    f = res.fidelity
    assert f.faithful is False and f.speed_factor == pytest.approx(0.7 * 3 / 4)
    assert "1 of 4 stored readings not analysed" in f.reasons[-1], f.reasons
    assert check(h).fidelity.faithful is None  # not judged (no bound): the section still says it


def test_an_episode_no_reading_holds_is_unrecorded_and_not_counted() -> None:
    # a strip at T0 and the next 8 h later; a 20-min episode in between
    h, o = history([strips("a", [T0, T0 + 8 * 3600], ["stored", "stored"])],
                   [af("a", T0 + 3600, T0 + 3600 + 1200)], [])
    c = clinical(h, o)
    assert [e.outcome for e in c.episodes] == ["unrecorded"]
    assert c.counts()["episodes"] == 0 and c.counts()["unrecorded"] == 1


def test_events_matching_no_segment_are_false_alarms_and_repeats_are_not() -> None:
    h, o = history([strips("a", [T0, T0 + 3600], ["stored", "stored"])],
                   [af("a", T0, T0 + 600)],
                   [event("a", T0, T0 + 40), event("a", T0 + 300, T0 + 400),  # the same episode twice
                    event("a", T0 + 3600, T0 + 3650),  # AF when the heart was in sinus
                    event("a", T0 + 3601, T0 + 3650, kind="brady"),  # no brady segment at all
                    event("a", T0 + 60, T0 + 100, kind="tachy"),  # AF's fast beats: explained
                    event("a", T0, T0 + 40, kind="unreadable")])
    c = clinical(h, o)
    assert [(a.kind, a.onset) for a in c.false_alarms] == [("af", T0 + 3600), ("brady", T0 + 3601)]
    assert c.events == 5 and c.unreadable == 1 and c.counts("tachy")["episodes"] == 0
    assert c.counts("af")["false_alarms"] == 1 and c.counts("af")["live"] == 1


def test_baseline_rhythms_count_only_where_the_event_rules_apply() -> None:
    pat = {"slow": Patient("slow", hr_bpm=35.0), "mild": Patient("mild", hr_bpm=52.0),
           "fast": Patient("fast", hr_bpm=170.0)}
    truth = [TruthSegment("slow", "rhythm", "brady", T0, None),
             TruthSegment("mild", "rhythm", "brady", T0, None),  # sinus bradycardia, above 40
             TruthSegment("fast", "rhythm", "tachy", T0, None),
             TruthSegment("sinus", "rhythm", "sinus", T0, None),
             af("af", T0, None, episode=False)]
    parts = [strips(d, [T0 + 10], ["stored"]) for d in ("slow", "mild", "fast", "sinus", "af")]
    h, o = history(parts, truth, [event("mild", T0 + 10, T0 + 50, kind="brady")], pat)
    c = clinical(h, o, run_end=T0 + 3600)
    assert sorted((e.dev, e.kind, e.baseline) for e in c.episodes) == [
        ("af", "af", True), ("fast", "tachy", True), ("slow", "brady", True)]
    assert all(e.end == T0 + 3600 for e in c.episodes)  # a baseline lasts until the run ends
    assert c.false_alarms == ()  # the mild brady's event is not an episode, nor a false alarm


def test_the_event_rules() -> None:
    end = T0 + 100
    assert episode_kind(TruthSegment("a", "rhythm", "vt", T0, end, True)) == "tachy"
    assert episode_kind(TruthSegment("a", "rhythm", "pvc", T0, None)) is None
    assert episode_kind(TruthSegment("a", "rhythm", "pvc", T0, None, hr_bpm=36.0)) == "brady"
    assert episode_kind(TruthSegment("a", "rhythm", "sinus", T0, None), Patient("a", 171.0)) == "tachy"
    assert episode_kind(TruthSegment("a", "artifact", "lead-off", T0, end, True)) is None
    short = TruthSegment("a", "rhythm", "pause", T0, T0 + 2.5, True)
    assert not qualifies(short, "pause", None, end)
    assert qualifies(TruthSegment("a", "rhythm", "pause", T0, T0 + 6, True), "pause", None, end)
    # a scheduled episode of unknown rate counts; a baseline of unknown rate does not
    assert qualifies(TruthSegment("a", "rhythm", "brady-episode", T0, end, True), "brady", None, end)
    assert not qualifies(TruthSegment("a", "rhythm", "brady", T0, None), "brady", None, end)
    assert not qualifies(TruthSegment("a", "rhythm", "tachy", T0, None, hr_bpm=140.0), "tachy", None, end)


def test_truth_records_are_deduplicated_and_are_not_reading_events() -> None:
    recs = [
        {"t": T0, "ev": "truth", "dev": "a", "kind": "rhythm", "label": "sinus", "start": T0,
         "end": None, "episode": False},
        {"t": T0, "ev": "truth", "dev": "a", "kind": "rhythm", "label": "af-episode", "start": T0 + 60,
         "end": None, "episode": True},
        {"t": T0 + 5, "ev": "truth", "dev": "a", "kind": "rhythm", "label": "af-episode",
         "start": T0 + 60, "end": T0 + 1260, "episode": True},  # written again after a restart
        {"t": T0 + 5, "ev": "truth", "dev": "a", "kind": "rhythm", "label": "sinus", "start": T0,
         "end": None, "episode": False},
        {"t": T0, "ev": "truth", "dev": "a", "kind": "mood", "label": "x", "start": T0},
        {"t": T0, "ev": "generated", "dev": "a", "boot": 1, "seq": 0, "cap": T0},
    ]
    segs, bad = parse_truth(recs)
    assert [(s.label, s.end) for s in segs] == [("sinus", None), ("af-episode", T0 + 1260)]
    assert bad == 1
    events, skipped = parse_device_events(recs)
    assert len(events) == 1 and skipped == 0


def test_check_gives_the_clinical_measures_to_expectations() -> None:
    h, _ = history([strips("a", [T0 + 100], ["stored"]), strips("b", [T0 + 100], ["stored"])],
                   [af("a", T0 + 90, T0 + 1300), af("b", T0 + 90, T0 + 1300)],
                   [event("a", T0 + 100, T0 + 100 + 71 * 3600), event("b", T0 + 100, T0 + 100 + 73 * 3600)])
    res = check(h, ["episodes_seen = episodes", "episodes_late.af = 2", "episode_delay.p50 >= 70h",
                    "episodes_missed = 0", "false_alarms = 0"])
    assert res.ok, res.verdict_lines
    ok, lines = verdict(res, ["episode_delay.max < 72h", "episodes_lost > 0"])
    assert not ok and all(line.startswith("FAIL") for line in lines)
    assert res.as_dict()["clinical"]["totals"]["late"] == 2


def test_clinical_expectations_parse_and_bad_ones_are_refused() -> None:
    assert parse_expectation("episode_delay.p50 >= 70h").value == 70 * 3600
    assert parse_expectation("episodes_seen = episodes").other == "episodes"
    with pytest.raises(ExpectationError, match="unknown measure"):
        parse_expectation("episodes_seen = patients")
    with pytest.raises(ExpectationError, match="unknown measure"):
        parse_expectation("episodes_seen.vf = 0")


def test_the_summary_line_says_what_happened_to_the_episodes() -> None:
    from lab.report.summary import clinical_headline, clinical_lines

    h, o = history([strips("a", [T0 + 100], ["stored"]), strips("b", [T0 + 100], ["lost"], cause=QOS0),
                    strips("c", [T0 + 100], ["stored"])],
                   [af("a", T0 + 90, T0 + 1300), af("b", T0 + 90, T0 + 1300), af("c", T0 + 90, T0 + 1300)],
                   [event("a", T0 + 100, T0 + 100 + 72 * 3600)])
    doc = clinical(h, o).as_dict()
    assert clinical_headline(doc) == ("3 AF episodes, 1 seen, all late (p50 72.0 h, max 72.0 h; "
                                      "each raised within 72.0 h of when it could arrive), "
                                      "1 lost (qos0-link-down 1), 1 missed by the detector, 0 false alarms")
    lines = clinical_lines(doc)
    assert lines[0].startswith("clinical: 3 AF episodes") and "af" in lines[1] and "late 1" in lines[1]
    assert clinical_lines(Clinical().as_dict()) == []
