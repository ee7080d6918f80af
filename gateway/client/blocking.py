# -*- test-case-name: tests.client.test_blocking -*-
"""
L{BlockingClient}: L{gateway.client.client.GatewayClient} for scripts that
are not written for Twisted.  The reactor runs in a daemon thread, started
on first use; each call hops into it and waits for the answer.
"""

import atexit
import re
import threading

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.python.failure import Failure

from gateway.client.client import GatewayClient, MessageRefused
from gateway.client.framing import ClientFraming

__all__ = ["BlockingClient", "ConnectFailed", "Outcome", "clientEndpoint"]

#: C{HOST:PORT}: a host without colons, or one in brackets (IPv6).
_HOST_PORT = re.compile(r"(?:\[([^\[\]]+)\]|([^:\[\]]+)):([0-9]{1,5})")

_started = threading.Lock()
_thread = None


class ConnectFailed(Exception):
    """
    The first connection to the gateway failed; the message says why.
    """


class Outcome:
    """
    What became of the messages sent.

    :ivar sent: how many were sent.
    :ivar confirmed: how many Kafka confirmed.
    :ivar refused: C{(seq, reason)} of each one refused.
    :ivar unacknowledged: how many got no answer (yet).
    """

    def __init__(self, client, sent):
        self.sent = sent
        self.confirmed = client.confirmed
        self.refused = list(client.refused)
        self.unacknowledged = client.unacknowledged

    def __repr__(self):
        return (
            f"<Outcome sent={self.sent} confirmed={self.confirmed} "
            f"refused={len(self.refused)} unacknowledged={self.unacknowledged}>"
        )


def clientEndpoint(reactor, address, timeout=10):
    """
    :param address: C{HOST:PORT} (C{[::1]:9000} for IPv6), or a Twisted
        client endpoint description (C{tcp:...}, C{tls:...}, C{unix:...}).
    :return: an L{twisted.internet.interfaces.IStreamClientEndpoint}.
    """
    from twisted.internet.endpoints import HostnameEndpoint, clientFromString

    match = _HOST_PORT.fullmatch(address)
    if match:
        host = match.group(1) or match.group(2)
        return HostnameEndpoint(reactor, host, int(match.group(3)), timeout=timeout)
    return clientFromString(reactor, address)


def _runningReactor():
    """
    The global reactor, running in a daemon thread (started here once,
    stopped when the interpreter exits).
    """
    global _thread
    from twisted.internet import reactor

    with _started:
        if _thread is None:
            _thread = threading.Thread(
                target=reactor.run,
                kwargs={"installSignalHandlers": False},
                name="gateway-client-reactor",
                daemon=True,
            )
            _thread.start()
            atexit.register(reactor.callFromThread, reactor.stop)
    return reactor


def _reactorCall(reactor):
    from twisted.internet.threads import blockingCallFromThread

    def call(f, *args):
        return blockingCallFromThread(reactor, f, *args)

    return call


class BlockingClient:
    """
    Connect in the constructor, send with L{send} (which waits while the
    window is full), then L{flush} to wait for the acknowledgements and
    L{close}.  Also a context manager.

    :ivar client: the L{GatewayClient}, living in the reactor thread.
    """

    def __init__(
        self,
        address,
        framing="lines",
        session=None,
        firstSeq=1,
        maxUnacked=1000,
        connectTimeout=10.0,
        reactor=None,
        call=None,
    ):
        """
        :param address: C{HOST:PORT} or a client endpoint description (see
            L{clientEndpoint}).
        :param framing: the listener's framing: C{NAME[(OPTIONS)]}, or a
            L{ClientFraming}.
        :param session: the session id (random unless given).
        :param firstSeq: the number of the first message.
        :param maxUnacked: the window (see L{GatewayClient}).
        :param connectTimeout: seconds for the first connection.
        :param reactor: the reactor (the global one, run in a thread, unless
            given; then C{call} is needed too).
        :param call: C{call(f, *args)} runs C{f} in the reactor's thread and
            returns its (waited for) result.
        :raises ConnectFailed: when the first connection fails.
        :raises gateway.framing.OptionError: for a bad framing.
        :raises ValueError: for a bad session, number or window.
        """
        if not isinstance(framing, ClientFraming):
            framing = ClientFraming.fromSpec(framing)
        if reactor is None:
            reactor = _runningReactor()
            call = _reactorCall(reactor)
        self.address = address
        self._reactor = reactor
        self._call = call
        self._sent = 0
        self.client = GatewayClient(
            clientEndpoint(reactor, address, connectTimeout),
            framing,
            session=session,
            firstSeq=firstSeq,
            maxUnacked=maxUnacked,
            clock=reactor,
        )
        self._call(self._connect, connectTimeout)

    @property
    def session(self):
        """
        The session id.
        """
        return self.client.session

    def _connect(self, timeout):
        client = self.client
        client.start()
        connected = client.whenConnected(failAfterFailures=1)
        connected.addTimeout(timeout, self._reactor)

        def failed(failure):
            message = failure.getErrorMessage() or failure.type.__name__
            if failure.check(DeferredTimeout, CancelledError):
                message = f"no connection within {timeout:g} s"
            error = ConnectFailed(f"cannot connect to {self.address}: {message}")
            # Stop retrying, but not from inside ClientService's own
            # callback (its state machine refuses re-entry).
            stopped = Deferred()
            self._reactor.callLater(0, lambda: client.stop().chainDeferred(stopped))
            return stopped.addBoth(lambda _: Failure(error))

        return connected.addCallbacks(lambda _: None, failed)

    def send(self, payload, timeout=None):
        """
        Send one message, first waiting while the window is full.

        :param timeout: seconds to wait for room (for ever unless given).
        :return: the message's number.
        :raises TimeoutError: when there was no room in time.
        """
        return self._call(self._send, payload, timeout)

    def _send(self, payload, timeout):
        room = self.client.whenRoom()
        if timeout is not None:
            room.addTimeout(timeout, self._reactor)

        def send(_):
            seq = self.client.nextSeq
            self.client.send(payload).addErrback(lambda f: f.trap(MessageRefused))
            self._sent += 1
            return seq

        def late(failure):
            failure.trap(DeferredTimeout, CancelledError)
            return Failure(TimeoutError(f"no room for a message within {timeout:g} s"))

        return room.addCallbacks(send, late)

    def flush(self, timeout=None):
        """
        Wait until every message sent was confirmed or refused.

        :param timeout: seconds to wait at most (for ever unless given).
        :return: an L{Outcome}; its C{unacknowledged} is not 0 when the
            time ran out.
        """
        return self._call(self._flush, timeout)

    def _flush(self, timeout):
        drained = self.client.whenAllAcknowledged()
        if timeout is not None:
            drained.addTimeout(timeout, self._reactor)
        drained.addErrback(lambda f: f.trap(DeferredTimeout, CancelledError))
        return drained.addCallback(lambda _: Outcome(self.client, self._sent))

    def close(self):
        """
        Disconnect (what is unacknowledged stays unacknowledged).
        """
        self._call(self._close)

    def _close(self):
        stopped = Deferred()
        self.client.stop().addBoth(lambda _: stopped.callback(None))
        return stopped

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
