"""ingest/metrics.py and its endpoint (ecgcore/metrics_http.py): the counters move with the
batches the service handles, the exposition parses and follows Prometheus' naming rules, the
endpoint serves on a free port and says where, and a port that cannot be served is one line."""

from __future__ import annotations

import io
import json
import re
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ecgcore.clock import ManualClock
from ecgcore.metrics_http import MetricsServer, MetricsServerError
from ingest.handoff import BatchQueue
from ingest.metrics import LAG_BUCKETS, BatchHistogram, IngestMetrics
from ingest.service import IngestService, ServiceConfig
from ingest.subscriber import InboundMessage, SubscriberStats
from tests.ingest.conftest import REPO, payload_of

NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")  # Prometheus' metric name rule
LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class FakeSource:
    """The service's Source without a broker: deliveries are handed to handle_batch directly."""

    def __init__(self) -> None:
        self.queue: BatchQueue[InboundMessage] = BatchQueue(maxsize=100)
        self.ready = threading.Event()
        self.stats = SubscriberStats()
        self.acked: list[int] = []

    @property
    def connected(self) -> bool:
        return True

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def ack_broker(self, deliveries: Sequence[InboundMessage]) -> int:
        self.acked.extend(d.mid for d in deliveries)
        return len(deliveries)

    def publish_acks(self, messages: Sequence[tuple[str, bytes]]) -> int:
        return len(messages)


def ticking(step: float) -> Callable[[], float]:
    """A real timer that advances `step` seconds each time it is read."""
    t = [0.0]

    def read() -> float:
        t[0] += step
        return t[0]

    return read


def families(registry: CollectorRegistry) -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """The exposition, parsed by prometheus_client's own parser: family → {(sample, labels): value}."""
    out: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for fam in text_string_to_metric_families(generate_latest(registry).decode()):
        out[fam.name] = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in fam.samples}
    return out


def value(registry: CollectorRegistry, sample: str, **labels: str) -> float:
    v = registry.get_sample_value(sample, labels)
    assert v is not None, f"no sample {sample}{labels}"
    return v


def delivery(mid: int, payload: bytes, device: str = "hc-1") -> InboundMessage:
    return InboundMessage(f"heartcheck/{device}/ecg", payload, mid, 1, 1_700_000_000.0, 1)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[IngestService, IngestMetrics, ManualClock]]:
    metrics = IngestMetrics("ingest-3")
    clock = ManualClock(start=1_700_000_100.0)
    cfg = ServiceConfig(state_dir=tmp_path / "state", host="h", port=1, acks=True,
                        rate_limit=1.0, rate_burst=4.0, worker="3")
    svc = IngestService(cfg, clock, source=FakeSource(), out=io.StringIO(),
                        metrics=metrics, real_clock=ticking(0.25))
    yield svc, metrics, clock
    svc.store.close()


def test_counters_move_with_each_batch_and_every_message_has_one_outcome(
    service: tuple[IngestService, IngestMetrics, ManualClock],
) -> None:
    svc, m, _clock = service
    r, w = m.registry, {"worker": "ingest-3"}
    svc.handle_batch([delivery(1, payload_of("hc-1", 0)), delivery(2, payload_of("hc-1", 1)),
                      delivery(3, payload_of("hc-1", 0)), delivery(4, b"garbage")])
    assert value(r, "ecgpipe_ingest_readings_received_total", **w) == 4
    assert value(r, "ecgpipe_ingest_readings_stored_total", **w) == 2
    assert value(r, "ecgpipe_ingest_readings_duplicate_total", **w) == 1
    assert value(r, "ecgpipe_ingest_readings_quarantined_total", reason="bad-magic", **w) == 1
    assert value(r, "ecgpipe_ingest_acks_sent_total", **w) == 1  # one ack message for hc-1
    # the burst of 4 is spent on hc-2's first four; the next two are refused by the rate limit
    svc.handle_batch([delivery(10 + i, payload_of("hc-2", i), "hc-2") for i in range(6)])
    assert value(r, "ecgpipe_ingest_readings_quarantined_total", reason="rate-limited", **w) == 2
    assert value(r, "ecgpipe_ingest_readings_stored_total", **w) == 6
    received = value(r, "ecgpipe_ingest_readings_received_total", **w)
    quarantined = sum(v for (name, _), v in families(r)["ecgpipe_ingest_readings_quarantined"].items()
                      if name.endswith("_total"))
    outcomes = (value(r, "ecgpipe_ingest_readings_stored_total", **w)
                + value(r, "ecgpipe_ingest_readings_duplicate_total", **w) + quarantined)
    assert received == outcomes == 10
    # the service's own counts agree
    assert (svc.stats.stored, svc.stats.duplicates, svc.stats.refused) == (6, 1, 2)


def test_commit_histograms_count_batches_and_time_them_with_the_real_timer(
    service: tuple[IngestService, IngestMetrics, ManualClock],
) -> None:
    svc, m, _clock = service
    r, w = m.registry, {"worker": "ingest-3"}
    svc.handle_batch([delivery(1, payload_of("hc-1", 0))])
    svc.handle_batch([delivery(2 + i, payload_of("hc-1", 1 + i)) for i in range(3)])
    assert value(r, "ecgpipe_ingest_commit_batch_readings_count", **w) == 2
    assert value(r, "ecgpipe_ingest_commit_batch_readings_sum", **w) == 4
    assert value(r, "ecgpipe_ingest_commit_batch_readings_bucket", le="2.0", **w) == 1
    assert value(r, "ecgpipe_ingest_commit_seconds_count", **w) == 2
    assert value(r, "ecgpipe_ingest_commit_seconds_sum", **w) == pytest.approx(0.5)  # 0.25 per read pair


def test_capture_to_store_is_from_each_stored_readings_capture_end_on_the_service_clock(
    service: tuple[IngestService, IngestMetrics, ManualClock],
) -> None:
    svc, m, clock = service
    r, w = m.registry, {"worker": "ingest-3"}
    # make_reading: seq k is captured at 1_700_000_000 + k, 250 samples at 250 Hz: it ends 1 s later
    clock.advance(3600 * 5)  # a five-hour outage's backlog
    svc.handle_batch([delivery(1, payload_of("hc-1", 0)), delivery(2, payload_of("hc-1", 1)),
                      delivery(3, payload_of("hc-1", 1))])  # the last a duplicate: not observed
    now = clock.now()
    ends = [1_700_000_000.0 + 1, 1_700_000_001.0 + 1]
    assert value(r, "ecgpipe_ingest_capture_to_store_seconds_count", **w) == 2
    assert value(r, "ecgpipe_ingest_capture_to_store_seconds_sum", **w) == pytest.approx(
        sum(now - e for e in ends))
    assert value(r, "ecgpipe_ingest_capture_to_store_seconds_bucket", le="14400.0", **w) == 0
    assert value(r, "ecgpipe_ingest_capture_to_store_seconds_bucket", le="43200.0", **w) == 2


def test_batch_histogram_buckets_match_prometheus_clients_own() -> None:
    values = [0.0, 0.5, 0.50001, 1.0, 59.9, 60.0, 3600.0, 1e6, -1.0, *LAG_BUCKETS]
    ref_reg = CollectorRegistry()
    ref = Histogram("ref_seconds", "reference", buckets=LAG_BUCKETS, registry=ref_reg)
    for v in values:
        ref.observe(v)
    mine_reg = CollectorRegistry()
    mine = BatchHistogram("mine_seconds", "batch", LAG_BUCKETS, {"worker": "w"})
    mine_reg.register(mine)
    mine.observe_many(values[:4])
    mine.observe_many(values[4:])
    for le in [repr(b) for b in LAG_BUCKETS] + ["+Inf"]:
        assert (mine_reg.get_sample_value("mine_seconds_bucket", {"le": le, "worker": "w"})
                == ref_reg.get_sample_value("ref_seconds_bucket", {"le": le})), le
    assert mine_reg.get_sample_value("mine_seconds_sum", {"worker": "w"}) == pytest.approx(sum(values))


def test_batch_histogram_is_thread_safe() -> None:
    reg = CollectorRegistry()
    h = BatchHistogram("t_seconds", "threads", (1.0, 2.0), {"worker": "w"})
    reg.register(h)

    def work() -> None:
        for _ in range(300):
            h.observe_many([0.5, 1.5, 2.5])
            generate_latest(reg)  # scrapes meanwhile

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert reg.get_sample_value("t_seconds_count", {"worker": "w"}) == 4 * 300 * 3
    assert reg.get_sample_value("t_seconds_bucket", {"le": "1.0", "worker": "w"}) == 4 * 300


def test_names_follow_prometheus_conventions() -> None:
    m = IngestMetrics()
    m.watch_source(lambda: True, lambda: 7)
    # prometheus_client's own `_created` series (when a series was created) parse as gauges
    fams = [f for f in text_string_to_metric_families(generate_latest(m.registry).decode())
            if not f.name.endswith("_created")]
    types = {f.name: f.type for f in fams}
    assert {"ecgpipe_ingest_readings_received", "ecgpipe_ingest_readings_stored",
            "ecgpipe_ingest_readings_duplicate", "ecgpipe_ingest_readings_quarantined",
            "ecgpipe_ingest_acks_sent"} <= {n for n, t in types.items() if t == "counter"}
    assert {"ecgpipe_ingest_commit_batch_readings", "ecgpipe_ingest_commit_seconds",
            "ecgpipe_ingest_capture_to_store_seconds"} <= {n for n, t in types.items() if t == "histogram"}
    for fam in fams:
        assert NAME_RE.fullmatch(fam.name) and fam.name.startswith("ecgpipe_ingest_"), fam.name
        assert fam.documentation, fam.name
        for s in fam.samples:
            assert all(LABEL_RE.fullmatch(k) for k in s.labels), s
            assert s.labels.get("worker") == "ingest", s  # every series says which process
            if fam.type == "counter":
                assert s.name == fam.name + "_total", s.name
        # base units: time in seconds, counts of readings or messages; no other unit in a name
        assert not re.search(r"_(ms|millis|milliseconds|minutes|hours|bytes_kb|percent)(_|$)", fam.name)
        if fam.type == "histogram":
            assert fam.name.endswith(("_seconds", "_readings")), fam.name
    assert m.registry.get_sample_value("ecgpipe_ingest_queue_messages", {"worker": "ingest"}) == 7
    assert m.registry.get_sample_value("ecgpipe_ingest_broker_connected", {"worker": "ingest"}) == 1


def test_the_endpoint_serves_on_a_free_port_and_records_where(tmp_path: Path) -> None:
    m = IngestMetrics()
    server = MetricsServer(m.registry, "127.0.0.1", 0)
    try:
        record = tmp_path / "ingest" / "metrics.json"
        server.write_record(record, name="ingest", at=123.0)
        doc = json.loads(record.read_text())
        assert doc["port"] > 0 and doc["host"] == "127.0.0.1" and doc["name"] == "ingest"
        assert doc["url"] == f"http://127.0.0.1:{doc['port']}/metrics" and doc["at"] == 123.0
        m.received.inc(3)
        with urllib.request.urlopen(doc["url"], timeout=10) as resp:  # noqa: S310 - a URL we made
            text = resp.read().decode()
        assert 'ecgpipe_ingest_readings_received_total{worker="ingest"} 3.0' in text
    finally:
        server.close()
    with pytest.raises(urllib.error.URLError, match="refused"):
        urllib.request.urlopen(doc["url"], timeout=5)  # noqa: S310 - closed: refused


def test_a_taken_port_is_one_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MetricsServerError, match=f"127.0.0.1:{port}: .*in use"):
            MetricsServer(IngestMetrics().registry, "127.0.0.1", port)


@pytest.mark.parametrize(("args", "code", "words"), [
    (["--metrics-port", "70000"], 2, "metrics port 70000 is not in 0..65535"),
    (["--metrics-port", "x"], 2, "metrics port 'x' is not an integer"),
    (["--metrics-port", "0", "--metrics-host", "no.such.host.invalid"], 1, "cannot serve metrics"),
])
def test_bad_metrics_options_stop_ingest_with_one_line(tmp_path: Path, args: list[str], code: int,
                                                      words: str) -> None:
    res = subprocess.run([sys.executable, "-m", "ingest", "--state-dir", str(tmp_path), "--host",
                          "127.0.0.1", "--port", "1", *args], capture_output=True, text=True,
                         timeout=60, cwd=REPO, check=False)
    assert res.returncode == code, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], res.stderr
    assert not (tmp_path / "ingest" / "metrics.json").exists()


def test_a_taken_metrics_port_stops_ingest_at_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = subprocess.run([sys.executable, "-m", "ingest", "--state-dir", str(tmp_path), "--host",
                              "127.0.0.1", "--port", "1", "--metrics-port", str(port)],
                             capture_output=True, text=True, timeout=60, cwd=REPO, check=False)
    assert res.returncode == 1
    (line,) = res.stderr.strip().splitlines()
    assert f"127.0.0.1:{port}" in line and "in use" in line and "Traceback" not in res.stderr
    assert not (tmp_path / "ingest" / "ingest.sqlite").exists()  # it stopped before opening its store
