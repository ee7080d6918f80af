# -*- test-case-name: tests.test_acks -*-
"""
Ack mode (a listener's C{ack=on}): a connection learns, on the connection
itself, which of its messages Kafka has confirmed, so that after any crash
it can send again exactly what was not (see C{docs/guarantees.md}).

A connection's messages are numbered from 1, or from the C{first-seq} of a
first message C{SESSION <id> <first-seq>}; each record carries its number
(C{gateway-seq}) and, with a session, the session (C{gateway-session}).  The
gateway writes back, in the listener's own framing, C{ACK <k>} once every
message up to k is confirmed (at most one write per C{ack-interval}, and one
at once when nothing is outstanding), and C{NACK <seq> <reason>} for a
message Kafka refused for good.

The record key (and topic) are the listener's routing's, chosen in one place
(L{gateway.routing.Route.resolve}), again once when the handshake arrives:
by default C{key=session}, the session's id, so a session stays on one
partition across reconnects.

L{AckStream} is the connection's message stream and stands in for it with
the router (pause, resume, budget), so that a connection paused because it
does not read its acknowledgements stays paused whatever the budget does.
Listeners without C{ack=on} never run this code.
"""

from collections import deque

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from gateway.framing.options import ACK_INTERVAL, DEFAULT_ACK_INTERVAL
from gateway.interfaces import IMessageStream
from gateway.kafka.records import Receipt, Record

__all__ = [
    "AckStream",
    "BAD_SESSION",
    "NO_SESSION",
    "SEQ_HEADER",
    "SESSION_HEADER",
    "UNREAD_LIMIT",
    "parseSession",
]

SEQ_HEADER = "gateway-seq"
SESSION_HEADER = "gateway-session"

#: Why a connection was closed: its first message started like a handshake
#: (C{SESSION }) and was not a valid one.
BAD_SESSION = "bad-session"

#: Why a connection was closed: its listener's topic names C{{session}} and
#: its first message was no handshake.
NO_SESSION = "no-session"

#: Bytes of acknowledgements the client has not read (beyond what TCP's
#: own buffers hold) before the gateway stops reading from it.
UNREAD_LIMIT = 16384

_SESSION = b"SESSION "
_MAX_SESSION_ID = 64
_MAX_SEQ = 2**63 - 1
#: Printable ASCII without the space.
_ID_BYTES = frozenset(range(0x21, 0x7F))


def parseSession(payload):
    """
    Read a handshake, C{SESSION <id> <first-seq>}.

    :param payload: a message starting with C{SESSION }.
    :return: C{(sessionId, firstSeq)}: the id's bytes and an L{int}.
    :raises ValueError: saying what is wrong.
    """
    parts = payload.split(b" ")
    if len(parts) != 3 or parts[0] != b"SESSION":
        raise ValueError("not SESSION <id> <first-seq>")
    sessionId, first = parts[1], parts[2]
    if not 0 < len(sessionId) <= _MAX_SESSION_ID or not _ID_BYTES.issuperset(sessionId):
        raise ValueError("the id must be 1 to 64 printable ASCII characters without spaces")
    # bytes.isdigit() is true of ASCII digits only.
    if not first.isdigit() or not 1 <= int(first) <= _MAX_SEQ:
        raise ValueError("the first sequence number must be a whole number from 1")
    return sessionId, int(first)


@implementer(IPushProducer)
class _UnreadAcks:
    """
    Registered with the connection's transport: paused when the client's
    unread acknowledgements exceed the transport's buffer, resumed once they
    are sent.
    """

    def __init__(self, stream):
        self._stream = stream

    def pauseProducing(self):
        self._stream.unreadAcks(True)

    def resumeProducing(self):
        self._stream.unreadAcks(False)

    def stopProducing(self):
        pass


@implementer(IMessageStream)
class AckStream:
    """
    One ack-mode connection: number its messages, produce each as a record
    whose confirmation comes back here, and write the acknowledgements.

    It is the connection's client for the router too: the router pauses
    and resumes it, and it passes that on unless the client's unread
    acknowledgements keep the connection paused.

    :ivar issued: the number of the last message produced.
    :ivar confirmed: every message up to this number is settled (confirmed,
        or refused and reported).
    :ivar acked: the last C{ACK} written.
    :ivar sessionId: the session's id (L{bytes}), or L{None}.
    :ivar deliveryCallback: kept here by the producer's client (see
        L{gateway.kafka.producer.KafkaProducerService.produceTracked}).
    """

    log = Logger()
    sessionId = None
    deliveryCallback = None

    def __init__(self, router, protocol):
        """
        :param router: the L{gateway.router.Router}; its producer's
            C{produceTracked} takes the records.
        :param protocol: the connection's framing protocol; its
            C{encodeFrame} frames the acknowledgements.
        """
        config = protocol.factory.config
        clock = getattr(config, "clock", None)
        if clock is None:
            from twisted.internet import reactor as clock
        self._clock = clock
        self._interval = protocol.options.get(ACK_INTERVAL, DEFAULT_ACK_INTERVAL)
        self._router = router
        self._protocol = protocol
        self._produce = router.producer.produceTracked
        self._produceMany = getattr(router.producer, "produceTrackedMany", None)
        self._encode = protocol.encodeFrame
        self._transport = protocol.transport
        # The records the client took one by one through produceTracked
        # (the pure path; the C extension's come back by number instead),
        # whose outcomes come in order: their numbers and their payloads'
        # hashes (checked: a record out of order is found by its payload,
        # never confirmed in another's place).
        self._seqs = deque()
        self._hashes = deque()
        self._messages = None
        self._topic = self._key = None
        self._headers = []
        self._special = True
        self._closed = False
        self._unread = False
        self._ahead = set()
        self._timer = None
        self._lastWrite = float("-inf")
        self.issued = self.confirmed = self.acked = 0

    @property
    def clientSubject(self):
        """
        The connection's verified client certificate subject (a TLS
        listener with C{tls-client-ca}), or L{None}: the stream's records
        carry it as the protocol's own would.
        """
        return getattr(self._protocol, "clientSubject", None)

    def compose(self, messages):
        """
        Take the record fields of the connection's plain message stream, and
        watch the transport's unsent bytes.

        :param messages: the connection's L{gateway.router.MessageStream}.
        :return: this stream.
        """
        self._messages = messages
        self._topic, self._key, headers = messages.recordFields()
        self._headers = list(headers or ())
        transport = self._transport
        if hasattr(transport, "bufferSize"):
            transport.bufferSize = UNREAD_LIMIT
        transport.registerProducer(_UnreadAcks(self), True)
        return self

    # IMessageStream

    def send(self, payload):
        """
        Produce one message as the connection's next record (the first may
        be the handshake instead).
        """
        if self._special and self._unusual(payload):
            return
        messages = self._messages
        messages.messages += 1
        messages.bytes += len(payload)
        seq = self.issued = self.issued + 1
        produceMany = self._produceMany
        if produceMany is not None and produceMany(
            self._topic, (payload,), self._key, self._headers, SEQ_HEADER, self, seq
        ):
            return
        if self._produce(
            self._topic, payload, self._key, [*self._headers, (SEQ_HEADER, b"%d" % seq)], self, seq
        ):
            self._seqs.append(seq)
            self._hashes.append(hash(payload))

    def sendMany(self, payloads):
        """
        Produce a read's messages as the connection's next records, with one
        call to the producer's C{produceTrackedMany}, as far as it takes them
        now (the C extension: their outcomes come back by number, to
        L{settleRange} or as failed records with a L{Receipt}); the framing
        sends the rest one by one (L{send}).  The first message, which may
        be the handshake, always goes to L{send}.

        :return: how many were taken (and counted).
        """
        produceMany = self._produceMany
        if self._special or produceMany is None:
            return 0
        taken = produceMany(
            self._topic, payloads, self._key, self._headers, SEQ_HEADER, self, self.issued + 1
        )
        if taken:
            self.issued += taken
            messages = self._messages
            messages.messages += taken
            messages.bytes += sum(
                map(len, payloads if taken == len(payloads) else payloads[:taken])
            )
        return taken

    def _unusual(self, payload):
        """
        The first message, or any after a bad handshake.

        :return: whether C{payload} is not a record.
        """
        if self._closed:
            return True
        self._special = False
        if not payload.startswith(_SESSION):
            if self._topic is None:
                self._special = self._closed = True
                self._protocol.frameError(NO_SESSION, size=len(payload))
                return True
            return False
        try:
            sessionId, first = parseSession(payload)
        except ValueError as e:
            self._special = self._closed = True
            self._protocol.frameError(BAD_SESSION, size=len(payload), problem=str(e))
            return True
        self.sessionId = sessionId
        self._topic, self._key, _ = self._messages.sessionStarted(sessionId)
        self._headers.append((SESSION_HEADER, sessionId))
        self.issued = self.confirmed = self.acked = first - 1
        return True

    def close(self):
        """
        The connection is gone: write nothing more, forget it.
        """
        self._closed = self._special = True
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()
        if self._messages is not None:
            self._messages.close()

    # Confirmations

    def delivered(self, error, value):
        """
        The outcome of the oldest record the client took through
        C{produceTracked} (they come in the order produced): confirmed
        (C{error} L{None}), or failed, and then handed to the producer as
        a record with its own L{Receipt} (it is produced again, or refused
        and reported).
        """
        digest = hash(value)
        hashes = self._hashes
        if hashes and hashes[0] == digest:
            hashes.popleft()
            seq = self._seqs.popleft()
        else:
            seq = self._outOfOrder(digest)
        if error is None:
            if seq is not None:
                self.settle(seq, None)
            return
        if seq is None:
            # Not ours to number: produced again without a receipt, so
            # never acknowledged, but never lost either.
            record = Record(self._topic, self._key, list(self._headers), value)
        else:
            record = Record(
                self._topic,
                self._key,
                [*self._headers, (SEQ_HEADER, b"%d" % seq)],
                value,
                Receipt(self, seq),
            )
        self._router.producer.deliveryFailed(record, error)

    def _outOfOrder(self, digest):
        """
        An outcome came out of order (the records are not on one partition):
        it is that of the oldest record in flight with the same payload.

        :return: that record's number, or L{None} if no record in flight has
            that payload (then nothing is acknowledged for it).
        """
        hashes, seqs = self._hashes, self._seqs
        if digest not in hashes:
            self.log.error(
                "ack mode: a delivery report for no record in flight ({count} in flight)",
                count=len(seqs),
            )
            return None
        index = hashes.index(digest)
        seq = seqs[index]
        del hashes[index], seqs[index]
        self.log.warn(
            "ack mode: delivery reports out of order (seq {seq} before {first}); "
            "are the connection's records on more than one partition?",
            seq=seq,
            first=seqs[0],
        )
        return seq

    def settle(self, seq, reason):
        """
        Kafka confirmed message C{seq} (C{reason} L{None}) or refused it for
        good (C{reason} one word): write a C{NACK} for a refusal; advance the
        confirmed prefix; write an C{ACK} once the reports being served are
        (a timer of no delay): when nothing is outstanding, else once the
        interval since the last write has passed.
        """
        if reason is not None:
            self._write(b"NACK %d %s" % (seq, reason.encode("ascii", "replace")))
        self.settleRange(seq, seq)

    def settleRange(self, first, last):
        """
        Kafka confirmed messages C{first} to C{last}: advance the confirmed
        prefix, and write an C{ACK} as L{settle} does.
        """
        confirmed = self.confirmed
        if first > confirmed + 1:
            self._ahead.update(range(first, last + 1))
            return
        if last <= confirmed:
            return
        confirmed = last
        ahead = self._ahead
        while ahead and confirmed + 1 in ahead:
            confirmed += 1
            ahead.remove(confirmed)
        self.confirmed = confirmed
        timer = self._timer
        if confirmed == self.issued:
            if timer is None:
                self._timer = self._clock.callLater(0, self.flush)
            else:
                timer.reset(0)
        elif timer is None:
            delay = self._lastWrite + self._interval - self._clock.seconds()
            self._timer = self._clock.callLater(max(delay, 0), self.flush)

    def flush(self):
        """
        Write C{ACK <confirmed>} if it says more than the last one (run by
        the timer L{settle} sets, which is its only caller).
        """
        self._timer = None
        if self.confirmed > self.acked:
            self.acked = self.confirmed
            self._lastWrite = self._clock.seconds()
            self._write(b"ACK %d" % self.acked)

    def _write(self, payload):
        if not self._closed:
            self._transport.write(self._encode(payload))

    # Flow control: the router's (budget) and the client's (unread acks)

    def unreadAcks(self, unread):
        """
        The transport's unsent bytes went over its buffer size (C{unread}
        true) or were all sent: stop reading the client, or read it again
        unless the router has every client paused.
        """
        self._unread = unread
        if unread:
            self._protocol.pauseProducing()
        elif not self._router.paused and not self._closed:
            self._protocol.resumeProducing()

    def pauseProducing(self):
        """
        The router pauses every client.
        """
        self._protocol.pauseProducing()

    def resumeProducing(self):
        """
        The router resumes every client: this one too, unless it has not
        read its acknowledgements.
        """
        if not self._unread:
            self._protocol.resumeProducing()

    def bufferedByteCount(self):
        """
        See L{gateway.framing.FramingProtocol.bufferedByteCount}.
        """
        return self._protocol.bufferedByteCount()

    def publishBuffered(self):
        """
        See L{gateway.framing.FramingProtocol.publishBuffered}.
        """
        self._protocol.publishBuffered()
