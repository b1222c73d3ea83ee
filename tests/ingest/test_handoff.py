"""The bounded hand-off queue between paho's thread and the service loop."""

from __future__ import annotations

import queue
import threading

import pytest

from ingest.handoff import BatchQueue


def test_batches_keep_order_and_respect_the_maximum() -> None:
    q: BatchQueue[int] = BatchQueue(maxsize=100)
    for i in range(10):
        q.put_nowait(i)
    assert q.get_batch(4, timeout=0) == [0, 1, 2, 3]
    assert q.get_batch(100, timeout=0) == [4, 5, 6, 7, 8, 9]
    assert q.get_batch(5, timeout=0.01) == [] and q.empty()


def test_it_is_bounded_and_a_blocked_producer_resumes() -> None:
    q: BatchQueue[int] = BatchQueue(maxsize=2)
    q.put_nowait(1)
    q.put_nowait(2)
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    with pytest.raises(queue.Full):
        q.put(3, timeout=0.01)
    done = threading.Event()

    def producer() -> None:
        q.put(3, timeout=10)
        done.set()

    t = threading.Thread(target=producer)
    t.start()
    assert q.get_batch(1, timeout=1) == [1]
    t.join(10)
    assert done.is_set() and q.get_batch(5, timeout=0) == [2, 3]


def test_single_item_api() -> None:
    q: BatchQueue[str] = BatchQueue(maxsize=3)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)
    q.put("a")
    assert q.qsize() == 1 and q.get(timeout=1) == "a"
    with pytest.raises(ValueError, match="must be bounded"):
        BatchQueue(maxsize=0)
