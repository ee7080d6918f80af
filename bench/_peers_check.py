"""
Read a benchmark topic back and count what every system delivered: the
clock says how fast, this says whether what arrived is what was sent.
"""

import time
import uuid

#: Payloads start with a letter: see L{_common.payloads}.
PREFIX = b"m"


class Tally:
    """
    Messages read back against the C{expected} payloads C{PREFIX<i>:xxx...}
    of C{size} bytes, C{0 <= i < expected}.

    :ivar received: records read.
    :ivar duplicated: records whose payload had been read already.
    :ivar mangled: records that are no payload that was sent.
    """

    def __init__(self, expected, size, prefix=PREFIX):
        self.expected = expected
        self.size = size
        self.prefix = prefix
        self.seen = bytearray(expected)
        self.received = self.duplicated = self.mangled = 0
        self._filler = b"x" * size

    def add(self, value):
        """
        Count one record's value.
        """
        self.received += 1
        prefix = self.prefix
        colon = value.find(b":", len(prefix)) if value is not None else -1
        if colon < 0 or not value.startswith(prefix):
            self.mangled += 1
            return
        digits = value[len(prefix) : colon]
        if not digits.isdigit():
            self.mangled += 1
            return
        index = int(digits)
        if index >= self.expected or value != (value[: colon + 1] + self._filler)[: self.size]:
            self.mangled += 1
            return
        if self.seen[index]:
            self.duplicated += 1
        else:
            self.seen[index] = 1

    @property
    def distinct(self):
        return self.expected - self.seen.count(0)

    @property
    def lost(self):
        return self.expected - self.distinct

    def summary(self):
        """
        :rtype: L{dict} with C{received}, C{lost}, C{duplicated}, C{mangled}
            and C{missing}: the first few indices never read.
        """
        missing = []
        at = self.seen.find(0)
        while at >= 0 and len(missing) < 5:
            missing.append(at)
            at = self.seen.find(0, at + 1)
        return {
            "missing": missing,
            "received": self.received,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "mangled": self.mangled,
        }


def readBack(bootstrap, topic, expected, size, records, stall=30.0):
    """
    Consume partition 0 of C{topic} from the beginning up to C{records}
    records (its end offset), or until nothing came for C{stall} seconds,
    and tally them.

    :rtype: L{dict}, see L{Tally.summary}
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-peers-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "log_level": 3,
        }
    )
    tally = Tally(expected, size)
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        last = time.monotonic()
        while tally.received < records and time.monotonic() - last < stall:
            for message in consumer.consume(10000, 1.0):
                if message.error() is None:
                    tally.add(message.value())
                    last = time.monotonic()
    finally:
        consumer.close()
    return tally.summary()
