# -*- test-case-name: tests.client.test_client -*-
"""
L{GatewayClient}: the reference client of a gateway listener in ack mode.

It numbers its messages in one session, keeps every message the gateway has
not yet acknowledged (a bounded window: the caller waits for room), and on
every connection, the first and each reconnection after a failure, sends
C{SESSION <id> <first unacknowledged seq>} and then every unacknowledged
message again, in order.  Records of one session carry its id and their
number, so a consumer drops the resent copies with
L{gateway.client.dedup.Deduplicator}.
"""

from collections import OrderedDict

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from gateway.client.protocol import ClientProtocolFactory
from gateway.client.wire import Ack, checkSession, handshake, newSession, parseReply

__all__ = ["GatewayClient", "MessageRefused", "WindowFull"]


class MessageRefused(Exception):
    """
    The gateway answered C{NACK}: Kafka refused this message for good.

    :ivar seq: the message's number in its session.
    :ivar reason: the gateway's one-word reason, e.g. C{too-large}.
    :ivar payload: the message.
    """

    def __init__(self, seq, reason, payload):
        Exception.__init__(self, f"message {seq} refused: {reason}")
        self.seq = seq
        self.reason = reason
        self.payload = payload


class WindowFull(Exception):
    """
    L{GatewayClient.send} was called with C{maxUnacked} messages already
    unacknowledged: wait for L{GatewayClient.whenRoom} first.
    """


class GatewayClient:
    """
    Send messages to a gateway listener in ack mode and learn which ones
    Kafka confirmed.

    :ivar session: the session id.
    :ivar framing: the listener's framing, a
        L{gateway.client.framing.ClientFraming}.
    :ivar maxUnacked: how many messages may wait for their acknowledgement.
    :ivar confirmed: how many messages were acknowledged.
    :ivar refused: C{(seq, reason)} of every message refused, in order.
    """

    log = Logger()

    def __init__(
        self,
        endpoint,
        framing,
        session=None,
        firstSeq=1,
        maxUnacked=1000,
        clock=None,
        retryPolicy=None,
    ):
        """
        :param endpoint: an L{twisted.internet.interfaces.IStreamClientEndpoint}
            to the listener.
        :param framing: the listener's framing
            (L{gateway.client.framing.ClientFraming}).
        :param session: the session id (L{newSession} unless given): give
            the same id and the first unacknowledged number to carry on a
            session after a crash.
        :param firstSeq: the number of the first message sent.
        :param maxUnacked: the window: at most this many messages are kept
            unacknowledged.
        :param clock: the L{twisted.internet.interfaces.IReactorTime} for
            the reconnection backoff (the reactor unless given).
        :param retryPolicy: seconds to wait before attempt N, as for
            L{ClientService} (backoff from 0.1 s to 10 s unless given).
        :raises ValueError: for a bad session id, number or window.
        """
        self.session = checkSession(newSession() if session is None else session)
        handshake(self.session, firstSeq)
        if maxUnacked < 1:
            raise ValueError(f"maxUnacked {maxUnacked!r}: expected at least 1")
        self.framing = framing
        self.maxUnacked = maxUnacked
        self.confirmed = 0
        self.refused = []
        self._nextSeq = firstSeq
        #: seq to (framed message, payload, Deferred), oldest first.
        self._unacked = OrderedDict()
        self._roomWaiters = []
        self._drainWaiters = []
        self._protocol = None
        self._service = ClientService(
            endpoint,
            ClientProtocolFactory(self),
            retryPolicy=retryPolicy or backoffPolicy(initialDelay=0.1, maxDelay=10.0),
            clock=clock,
        )

    # The caller's side

    def start(self):
        """
        Connect, and reconnect after every failure until L{stop}.
        """
        self._service.startService()

    def stop(self):
        """
        Disconnect and stop reconnecting.  Unacknowledged messages stay
        (L{unacknowledged}).

        :return: a L{Deferred} firing once disconnected.
        """
        return self._service.stopService()

    def whenConnected(self, failAfterFailures=None):
        """
        :param failAfterFailures: fail after this many failed attempts in a
            row (never unless given).
        :return: a L{Deferred} firing once connected, as
            L{ClientService.whenConnected}.
        """
        return self._service.whenConnected(failAfterFailures=failAfterFailures)

    @property
    def connected(self):
        """
        Whether a connection carries the session now.
        """
        return self._protocol is not None

    @property
    def unacknowledged(self):
        """
        How many messages wait for their acknowledgement.
        """
        return len(self._unacked)

    @property
    def nextSeq(self):
        """
        The number the next message sent will have.
        """
        return self._nextSeq

    @property
    def firstUnacknowledged(self):
        """
        The number of the oldest unacknowledged message, or of the next
        message when none waits: where a reconnection resumes.
        """
        for seq in self._unacked:
            return seq
        return self._nextSeq

    def send(self, payload):
        """
        Number a message and send it (now, or on the next connection).

        :param payload: the message (L{bytes}).
        :return: a L{Deferred} firing with the message's number once Kafka
            confirmed it, or failing with L{MessageRefused}.
        :raises WindowFull: when C{maxUnacked} messages wait already.
        :raises ValueError: for a payload the framing cannot carry.
        """
        if len(self._unacked) >= self.maxUnacked:
            raise WindowFull(f"{len(self._unacked)} messages unacknowledged")
        frame = self.framing.encode(payload)
        seq = self._nextSeq
        self._nextSeq = seq + 1
        confirmed = Deferred()
        self._unacked[seq] = (frame, payload, confirmed)
        if self._protocol is not None:
            self._protocol.writeFrames((frame,))
        return confirmed

    def whenRoom(self):
        """
        :return: a L{Deferred} firing (with L{None}) as soon as L{send} can
            take one more message.
        """
        if len(self._unacked) < self.maxUnacked:
            return succeed(None)
        waiter = Deferred()
        self._roomWaiters.append(waiter)
        return waiter

    def whenAllAcknowledged(self):
        """
        :return: a L{Deferred} firing (with L{None}) once no message waits
            for its acknowledgement.
        """
        if not self._unacked:
            return succeed(None)
        waiter = Deferred()
        self._drainWaiters.append(waiter)
        return waiter

    # The connection's side

    def connectionMade(self, protocol):
        """
        A connection is up: start the session where it stands, and send
        every unacknowledged message again.
        """
        self._protocol = protocol
        frames = [handshake(self.session, self.firstUnacknowledged)]
        frames[0] = self.framing.encode(frames[0])
        frames.extend(frame for frame, _, _ in self._unacked.values())
        protocol.writeFrames(frames)

    def connectionLost(self, protocol, reason):
        """
        A connection is gone: hold the messages until the next one.
        """
        if self._protocol is protocol:
            self._protocol = None

    def replyReceived(self, protocol, payload):
        """
        Apply one C{ACK} or C{NACK} from the current connection.
        """
        if protocol is not self._protocol:
            return
        try:
            reply = parseReply(payload)
        except ValueError as e:
            self.log.warn("gateway client: ignored a reply: {error}", error=str(e))
            return
        if isinstance(reply, Ack):
            self._acknowledge(reply.upTo)
        else:
            self._refuse(reply.seq, reply.reason)
        self._notify()

    def _acknowledge(self, upTo):
        if upTo >= self._nextSeq:
            self.log.warn(
                "gateway client: ACK {upTo} for messages not sent (last sent {last})",
                upTo=upTo,
                last=self._nextSeq - 1,
            )
        unacked = self._unacked
        while unacked:
            seq = next(iter(unacked))
            if seq > upTo:
                break
            _, _, confirmed = unacked.pop(seq)
            self.confirmed += 1
            confirmed.callback(seq)

    def _refuse(self, seq, reason):
        entry = self._unacked.pop(seq, None)
        if entry is None:
            return
        _, payload, confirmed = entry
        self.refused.append((seq, reason))
        confirmed.errback(MessageRefused(seq, reason, payload))

    def _notify(self):
        free = self.maxUnacked - len(self._unacked)
        while free > 0 and self._roomWaiters:
            waiter = self._roomWaiters.pop(0)
            if not waiter.called:  # a caller may have given up (cancelled)
                waiter.callback(None)
                # One place each, and what the waiter took meanwhile: woken,
                # it may fill several (sending again while whenRoom succeeds).
                free = min(free - 1, self.maxUnacked - len(self._unacked))
        if not self._unacked:
            waiters, self._drainWaiters = self._drainWaiters, []
            for waiter in waiters:
                if not waiter.called:
                    waiter.callback(None)
