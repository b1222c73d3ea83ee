"""lab/report/alerts.py: the document and its text, on a state dir the analysis wrote."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.merge import StoredEvent
from analysis.model import Segment
from analysis.store import AnalysisStore
from lab.errors import StateDirError
from lab.report.alerts import format_alerts, inspect_alerts
from lab.stack.statedir import COMPONENTS, StateDir

T = 1_700_000_000.0


def write_events(sd: StateDir) -> None:
    store = AnalysisStore(sd.analysis_db)
    with store.batch():
        store.put_segment(Segment("hc-0001", 1, 0, T, T + 100, 0, True, 0.99, False), T + 101)
        late = T + 3 * 3600 + 70
        store.write_event(StoredEvent(None, "hc-0001", "af", T + 10, T + 60, False, late, late,
                                      {"hr_bpm": 110.0, "nrmssd": 0.3, "entropy": 0.9}), [])
        store.write_event(StoredEvent(None, "hc-0001", "brady", T + 80, T + 99, True, T + 95, T + 95,
                                      {"hr_bpm": 35.0}), [])
        store.set_state({"cursor": 100, "analysed": 100, "store_rowid": 120, "updated_at": T + 200,
                         "last_stored_at": T + 199})
    store.close()


def test_inspect_alerts_lists_events_with_both_times_and_the_delay(tmp_path: Path) -> None:
    sd = StateDir(tmp_path)
    write_events(sd)
    doc = inspect_alerts(sd, None, now=T + 300)
    assert [(e["kind"], e["ongoing"]) for e in doc["events"]] == [("af", False), ("brady", True)]
    assert doc["events"][0]["delay_s"] == pytest.approx(3 * 3600 + 60)
    assert doc["progress"]["behind"] == 20 and doc["by_kind"] == {"af": 1, "brady": 1}
    text = format_alerts(doc, now=T + 300)
    assert "2023-11-14T22:13:30Z" in text  # onset of the AF, ISO
    assert "3 h 1 min" in text and "ongoing" in text and "HR 35" in text
    assert "2 events (1 af, 1 brady); 100 readings analysed, 20 behind" in text
    assert inspect_alerts(sd, "hc-9999", now=T)["events"] == []


def test_no_store_is_no_events_and_a_damaged_one_is_one_line(tmp_path: Path) -> None:
    sd = StateDir(tmp_path)
    doc = inspect_alerts(sd, None, now=T)
    assert doc["events"] == [] and "no analysis store yet" in format_alerts(doc, T)
    sd.analysis_db.parent.mkdir(parents=True)
    sd.analysis_db.write_bytes(b"garbage" * 500)
    with pytest.raises(StateDirError, match=r"analysis store.*(unreadable|damaged)"):
        inspect_alerts(sd, None, now=T)


def test_the_stack_knows_the_analysis_component(tmp_path: Path) -> None:
    sd = StateDir(tmp_path)
    assert "analysis" in COMPONENTS
    comp = sd.component("analysis")
    assert comp.pidfile == tmp_path / "analysis" / "analysis.pid"
