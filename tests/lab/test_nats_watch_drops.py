"""The NATS watcher's count of readings a `discard old` stream limit pushes out after their
PUBACK (lab/stack/nats_watch.limit_drops), and the values it writes (pure)."""

from __future__ import annotations

from dataclasses import replace

from lab.stack.nats_monitor import MQTT_MSGS, ConsumerCounts, StreamCounts
from lab.stack.nats_watch import INGEST_CONSUMER, limit_drops, sample

EMPTY = StreamCounts(MQTT_MSGS, "nats-2", (), messages=0, bytes=0, first_seq=0, last_seq=0,
                     max_msgs=50, discard="old", consumers=())


def at(first: int, last: int, *, max_msgs: int = 50, discard: str = "old",
       consumers: tuple[ConsumerCounts, ...] = ()) -> StreamCounts:
    """The stream holding first..last (no gaps)."""
    return replace(EMPTY, first_seq=first, last_seq=last, messages=max(0, last - first + 1),
                   max_msgs=max_msgs, discard=discard, consumers=consumers)


def test_a_stream_that_filled_and_overflowed_between_samples_counts_the_overflow() -> None:
    # 200 published while the only subscriber is away, max_msgs 50: 150 pushed out (fact 8)
    assert limit_drops(EMPTY, at(151, 200)) == 150


def test_a_full_stream_counts_each_message_pushed_out() -> None:
    assert limit_drops(at(151, 200), at(161, 210)) == 10
    assert limit_drops(at(161, 210), at(161, 210)) == 0


def test_below_the_limit_nothing_is_counted_even_when_acks_empty_the_stream() -> None:
    assert limit_drops(at(1, 40), at(41, 60)) == 0  # 20 left: acknowledged, not dropped
    assert limit_drops(at(1, 40), at(1, 40, max_msgs=-1)) == 0  # no limit


def test_discard_new_and_a_stream_made_again_count_nothing() -> None:
    assert limit_drops(EMPTY, at(151, 200, discard="new")) == 0  # `new` refuses, never drops
    assert limit_drops(at(151, 200), at(1, 50)) == 0  # the sequence went back: a new stream
    assert limit_drops(None, at(151, 200)) == 0


def test_sample_reports_the_cumulative_drops_and_ingests_backlog() -> None:
    ingest = ConsumerCounts(INGEST_CONSUMER, "nats-2", num_pending=7, num_ack_pending=3,
                            num_redelivered=0, delivered_stream_seq=0, ack_floor_stream_seq=0)
    stream = at(151, 200, consumers=(ingest,))
    values = sample([{MQTT_MSGS: stream}], ["nats-1", "nats-2", "nats-3"], dropped=150)
    assert values == {"store/messages/count": 50, "retained messages/count": 0,
                      "publish/messages/dropped": 150, "nats/leader": 2, "nats/ingest_pending": 10}
