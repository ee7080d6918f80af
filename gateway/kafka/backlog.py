# -*- test-case-name: tests.kafka.test_backlog -*-
"""
The producer's backlog: records accepted while the client could not take
them (its queue full, or no client), kept in their order with their bytes,
and moved into the client as soon as it has room.

It is a L{deque}, so the hot path's C{if backlog:} costs no Python call.
"""

from collections import deque

__all__ = ["Backlog"]


class Backlog(deque):
    """
    Records (L{gateway.kafka.records.Record}) waiting for the client, oldest
    first.

    :ivar bytes: the payload bytes of those records.
    """

    def __init__(self):
        deque.__init__(self)
        self.bytes = 0

    def hold(self, record):
        """
        Keep C{record}, after every other.
        """
        self.append(record)
        self.bytes += len(record.value or b"")

    def putBack(self, records):
        """
        Keep C{records} before every other, in their order (records a client
        gave up on go first).
        """
        for record in reversed(records):
            self.appendleft(record)
            self.bytes += len(record.value or b"")

    def takeAll(self):
        """
        Empty the backlog.

        :return: its records, in order.
        """
        records = list(self)
        self.clear()
        self.bytes = 0
        return records

    def pump(self, produce, refuse, produceRecord=None):
        """
        Hand records to the client, oldest first, until it is full.

        :param produce: the client's C{produce(topic, value, key, headers)}.
        :param produceRecord: the client's C{produceRecord(record)}, for
            records with a C{receipt} (ack mode).
        :param refuse: called with a record and the exception it raised when
            the client refuses it for good; the record leaves the backlog.
        :return: how many records the client took.
        """
        taken = 0
        while self:
            record = self[0]
            try:
                if record.receipt is None:
                    produce(record.topic, record.value, record.key, headers=record.headers)
                else:
                    produceRecord(record)
            except BufferError:
                return taken
            except Exception as e:
                refuse(record, e)
            else:
                taken += 1
            self.popleft()
            self.bytes -= len(record.value or b"")
        return taken
