# -*- test-case-name: tests.test_framing -*-
"""
What every framing protocol shares: opening the connection's message stream,
the over-limit policy, and the log events that go with them.

The framing itself (C{dataReceived}) stays in the Twisted receiver each
protocol is built on; this mixin only wires it to the gateway.
"""

from twisted.logger import Logger

from gateway.listener import formatAddress

__all__ = ["FramedProtocolMixin"]


class FramedProtocolMixin:
    """
    Mix into a C{twisted.protocols.basic} receiver, before it in the bases.

    The factory (L{gateway.factory.GatewayFactory}) sets C{factory},
    C{connectionId} and C{MAX_LENGTH} before the connection is made.

    :ivar peer: the client's address as C{host:port}.
    :ivar connectionId: a number unique within the listener.
    :ivar overLimit: L{True} once the connection was closed for a frame over
        the limit.
    """

    log = Logger()
    factory = None
    connectionId = 0
    peer = "?"
    overLimit = False
    _stream = None

    def connectionMade(self):
        """
        Open the message stream that carries this connection's messages.
        """
        self.peer = formatAddress(self.transport.getPeer())
        self._stream = self.factory.config.sink.openStream(
            self.factory.config.name, self.peer, self
        )
        self._send = self._stream.send
        self.messageStreamOpened(self._send)

    def messageStreamOpened(self, send):
        """
        Hook for protocols that bind C{send} into their own hot path.

        :param send: the callable taking one message's bytes.
        """

    def connectionLost(self, reason):
        """
        Close the message stream; say so if a frame was left incomplete, since
        its bytes are not published.
        """
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()
        pending = self.bufferedByteCount()
        if pending and not self.overLimit:
            self.log.info(
                "{listener}: {peer} (connection {connection}) closed with "
                "{pending} bytes of an incomplete frame, not published",
                pending=pending,
                **self.logFields(),
            )

    def logFields(self):
        """
        :return: the fields every event about this connection carries.
        :rtype: L{dict}
        """
        return {
            "listener": self.factory.config.name,
            "peer": self.peer,
            "connection": self.connectionId,
        }

    def bufferedByteCount(self):
        """
        :return: how many received bytes are not yet part of a whole message.
        :rtype: L{int}
        """
        raise NotImplementedError()

    def messageTooLarge(self, size):
        """
        A frame is over the limit: log it and close this connection only.

        Skipping the frame and carrying on is not safe for every framing
        (the receivers keep the oversized bytes buffered), so the policy is
        the same for all: disconnect.

        :param size: the frame's declared or observed size, in bytes.
        """
        if self.overLimit:
            return
        self.overLimit = True
        self.log.warn(
            "{listener}: {peer} (connection {connection}) sent a frame of "
            "{size} bytes, over the {limit}-byte limit; closing the connection",
            size=size,
            limit=self.MAX_LENGTH,
            **self.logFields(),
        )
        self.transport.loseConnection()
