"""The lab's vocabulary: one definition of each word that crosses a package boundary.

    Delivery      fire-and-forget | broker-ack | end-to-end   (its QoS; whether ingest confirms)
    OutboxPolicy  drop-oldest | reject-new                     (what a full device outbox does)
    Backoff       jitter | none                                (how devices retry a lost link)
    Recording     continuous | strip                           (what a device records)
    Link          ingest | devices                             (the two proxied links to the broker)

Each is a StrEnum, so a member compares equal to its string and JSON, TOML and argparse see the
plain word. The tuples of values (DELIVERY_MODES, ...) are what argparse `choices` and error
messages list. Every other module imports these; none spells the words again.
"""

from __future__ import annotations

import enum
from typing import TypeVar


class Delivery(enum.StrEnum):
    """How far a reading must get before the device forgets it."""

    FIRE_AND_FORGET = "fire-and-forget"  # QoS 0: handed to the network
    BROKER_ACK = "broker-ack"  # QoS 1: the broker's PUBACK
    END_TO_END = "end-to-end"  # QoS 1: the ingest service's confirmation that it is stored

    @property
    def qos(self) -> int:
        return 0 if self is Delivery.FIRE_AND_FORGET else 1

    @property
    def ingest_confirms(self) -> bool:
        """True when the ingest service sends storage confirmations back to the devices."""
        return self is Delivery.END_TO_END


class OutboxPolicy(enum.StrEnum):
    DROP_OLDEST = "drop-oldest"
    REJECT_NEW = "reject-new"


class Backoff(enum.StrEnum):
    JITTER = "jitter"  # exponential backoff with equal jitter
    NONE = "none"  # every device retries every second, all in step: the thundering herd


class Recording(enum.StrEnum):
    CONTINUOUS = "continuous"  # back-to-back chunks
    STRIP = "strip"  # a few short strips a day (HeartCheck CardiBeat)


class Link(enum.StrEnum):
    INGEST = "ingest"  # ingest <-> broker
    DEVICES = "devices"  # the fleet <-> broker


DELIVERY_MODES: tuple[str, ...] = tuple(m.value for m in Delivery)
OUTBOX_POLICIES: tuple[str, ...] = tuple(m.value for m in OutboxPolicy)
BACKOFFS: tuple[str, ...] = tuple(m.value for m in Backoff)
RECORDINGS: tuple[str, ...] = tuple(m.value for m in Recording)
LINKS: tuple[str, ...] = tuple(m.value for m in Link)

E = TypeVar("E", bound=enum.StrEnum)


def parse_word(kind: type[E], value: str, what: str) -> E:
    """`kind(value)`, or ValueError naming `what` and the allowed words (callers translate it
    into their own package's ConfigError)."""
    try:
        return kind(value)
    except ValueError:
        words = ", ".join(m.value for m in kind)
        raise ValueError(f"{what} must be one of {words}, not {value!r}") from None
