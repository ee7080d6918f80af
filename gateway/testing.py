# -*- test-case-name: tests.framing.test_base -*-
"""
Testing plugins: a recording sink, a way to connect one protocol to a fake
transport, L{FramingConformanceMixin}, the conformance kit every framing
plugin (built-in or third-party) applies to itself, and
L{RoutingConformanceMixin}, the one for routing plugins.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver, StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from zope.interface import implementer
from zope.interface.verify import verifyObject

from gateway.framing import INCOMPLETE, TOO_LARGE
from gateway.framing.options import MAX_SIZE, resolveOptions
from gateway.interfaces import IFramingPlugin, IMessageSink, IMessageStream, IRoutingPlugin
from gateway.router import Router
from gateway.routing import Route, TopicTemplate, topicName
from gateway.server.factory import listenerFactory
from gateway.server.listener import ListenerConfig

__all__ = [
    "RecordingSink",
    "connectFraming",
    "FramingConformanceMixin",
    "RoutingConformanceMixin",
    "RecordingProducer",
]


@implementer(IMessageStream)
class _RecordingStream:
    def __init__(self, sink, listener, peer):
        self.sink = sink
        self.listener = listener
        self.peer = peer
        self.messages = []
        self.closed = False

    def send(self, payload):
        self.messages.append(payload)
        self.sink.messages.append((self.peer, payload))

    def close(self):
        self.closed = True


@implementer(IMessageSink)
class RecordingSink:
    """
    An L{IMessageSink} that records every message instead of producing it.

    :ivar messages: C{(peer, payload)} pairs in arrival order.
    :ivar streams: every stream opened, in order.
    """

    def __init__(self):
        self.messages = []
        self.streams = []

    def openStream(self, listener, peer, producer):
        stream = _RecordingStream(self, listener, peer)
        self.streams.append(stream)
        return stream


def connectFraming(
    plugin,
    options=None,
    sink=None,
    maxMessageSize=1024,
    name="test",
    peerPort=40000,
    clock=None,
    config=None,
):
    """
    Build one connected protocol of a framing plugin on a L{StringTransport}.

    :param plugin: an L{gateway.interfaces.IFramingPlugin}.
    :param options: the framing's options (as on the command line or as
        Python values); C{max-size} defaults to C{maxMessageSize}.
    :param sink: the sink; a new L{RecordingSink} when L{None}.
    :param name: the listener's name.
    :param peerPort: the fake client's port, to tell connections apart.
    :param clock: the listener's clock; a new L{Clock} when L{None}.
    :param config: a L{ListenerConfig} to reuse (sharing its stats) instead
        of building one from the other arguments.
    :return: C{(protocol, transport, sink)}; the listener's configuration is
        C{protocol.factory.config}.
    """
    if config is None:
        sink = RecordingSink() if sink is None else sink
        resolved = resolveOptions(plugin, dict(options or {}), maxMessageSize)
        config = ListenerConfig(
            name=name,
            framing=plugin.name,
            endpoint="tcp:0",
            sink=sink,
            maxMessageSize=resolved[MAX_SIZE],
            options=resolved,
            clock=Clock() if clock is None else clock,
        )
    factory = listenerFactory(plugin, config)
    protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 9000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", peerPort))
    protocol.makeConnection(transport)
    return protocol, transport, config.sink


def _splitAt(data, cuts):
    points = sorted({cut % (len(data) + 1) for cut in cuts}) if data else []
    chunks, start = [], 0
    for point in points + [len(data)]:
        chunks.append(data[start:point])
        start = point
    return chunks


class FramingConformanceMixin:
    """
    The conformance kit: mix into a C{twisted.trial.unittest.SynchronousTestCase}
    (pytest runs those too) and set the class attributes below.  Every
    built-in framing passes it.

    :cvar plugin: the L{IFramingPlugin} under test.
    :cvar options: the listener options to test with.
    :cvar maxSize: the listener's C{max-size} during the tests.
    :cvar malformed: C{(bytes, reason)} pairs: streams that must close the
        connection for that reason, publishing nothing.
    :cvar supportsEmptyMessages: whether an empty message round-trips.
    :cvar emitsWholeMessages: L{False} for a framing without boundaries
        (C{chunks}), which is then checked for bytes in order, not messages.
    """

    plugin = None
    options = {}
    maxSize = 1024
    malformed = ()
    supportsEmptyMessages = True
    emitsWholeMessages = True

    def __init_subclass__(cls, **kwargs):
        """
        Leave out the tests that do not apply to the framing (a framing that
        cannot express an empty message, or has no frames to leave
        incomplete), rather than have them skip or pass vacuously.
        """
        super().__init_subclass__(**kwargs)
        if not cls.supportsEmptyMessages:
            cls.test_emptyMessages = None
        if not cls.emitsWholeMessages:
            cls.test_connectionLostMidFrame = None

    def encode(self, messages):
        """
        Frame C{messages} as a client would.  Override.

        :rtype: L{bytes}
        """
        raise NotImplementedError()

    def messageStrategy(self):
        """
        A hypothesis strategy for lists of messages the framing can carry
        (each at most C{maxSize}).  Override when some bytes are reserved.
        """
        from hypothesis import strategies as st

        return st.lists(
            st.binary(min_size=0 if self.supportsEmptyMessages else 1, max_size=80), max_size=25
        )

    def sampleMessages(self):
        """
        A few messages the framing can carry, for the fixed tests.
        """
        return [b"first", b"a little longer second message", b"3"]

    def oversized(self):
        """
        A stream whose first frame is over C{maxSize}.
        """
        return self.encode([b"x" * (self.maxSize + 1)])

    def connect(self, **kwargs):
        kwargs.setdefault("options", self.options)
        kwargs.setdefault("maxMessageSize", self.maxSize)
        return connectFraming(self.plugin, **kwargs)

    def finish(self, protocol):
        """
        End the connection cleanly (what a framing publishes at close, such
        as C{chunks}' last chunk, comes out here).
        """
        protocol.connectionLost(Failure(ConnectionDone()))

    def assertSameMessages(self, received, sent):
        if self.emitsWholeMessages:
            self.assertEqual(received, sent)
        else:
            self.assertEqual(b"".join(received), b"".join(sent))
            self.assertTrue(all(len(chunk) <= self.maxSize for chunk in received))

    def test_providesInterface(self):
        """
        The plugin provides L{IFramingPlugin}, and its options' defaults are
        valid values of their own coercers.
        """
        verifyObject(IFramingPlugin, self.plugin)
        for option in self.plugin.options:
            self.assertEqual(option.coerce(option.default), option.default)

    def test_roundTrip(self):
        """
        Messages written in one read come out in order, and no timer is left
        behind once the connection closes.
        """
        protocol, transport, sink = self.connect()
        messages = self.sampleMessages()
        protocol.dataReceived(self.encode(messages))
        self.finish(protocol)
        self.assertSameMessages(sink.streams[0].messages, messages)
        self.assertFalse(transport.disconnecting)
        clock = protocol.factory.config.clock
        self.assertEqual(clock.getDelayedCalls(), [], "timers left after close")

    def test_anyChunking(self):
        """
        However a valid stream is cut into reads, the same messages come out
        in the same order.
        """
        from hypothesis import HealthCheck, given, settings
        from hypothesis import strategies as st

        @settings(
            max_examples=150,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
        )
        @given(messages=self.messageStrategy(), cuts=st.lists(st.integers(0, 10_000), max_size=30))
        def check(messages, cuts):
            protocol, transport, sink = self.connect()
            for chunk in _splitAt(self.encode(messages), cuts):
                protocol.dataReceived(chunk)
            self.finish(protocol)
            received = sink.streams[0].messages
            self.assertSameMessages(received, messages)

        check()

    def test_emptyMessages(self):
        """
        Empty messages round-trip where the framing can express them.
        """
        protocol, transport, sink = self.connect()
        protocol.dataReceived(self.encode([b"", b"between", b""]))
        self.finish(protocol)
        self.assertSameMessages(sink.streams[0].messages, [b"", b"between", b""])

    def test_exactlyAtLimit(self):
        """
        A message of exactly C{max-size} bytes is published whole, in one
        read, cut in two, and with its frame's last byte in a read of its
        own; the limit is the largest size allowed, not the first refused.
        """
        message = b"x" * self.maxSize
        encoded = self.encode([message, b"after"])
        last = len(self.encode([message])) - 1
        for reads in (
            [encoded],
            [encoded[: self.maxSize // 2], encoded[self.maxSize // 2 :]],
            [encoded[:last], encoded[last:]],
        ):
            protocol, transport, sink = self.connect()
            for read in reads:
                protocol.dataReceived(read)
            self.finish(protocol)
            self.assertSameMessages(sink.streams[0].messages, [message, b"after"])
            self.assertIsNone(protocol.frameFailed)
            self.assertFalse(transport.disconnecting)

    def test_overLimit(self):
        """
        A frame over the limit closes the connection, is counted as
        C{too-large} and logged with the peer, and nothing of it is published;
        a complete message before it is.
        """
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        protocol, transport, sink = self.connect()
        protocol.dataReceived(self.encode([b"ok"]) + self.oversized())
        self.assertTrue(transport.disconnecting)
        self.assertEqual(protocol.frameFailed, TOO_LARGE)
        self.assertEqual(protocol.factory.config.stats.frameErrors[TOO_LARGE], 1)
        self.assertSameMessages(sink.streams[0].messages, [b"ok"])
        [event] = [e for e in events if e.get("reason") == TOO_LARGE]
        self.assertEqual(event["peer"], "127.0.0.1:40000")
        self.assertEqual(event["listener"], "test")

    def test_bufferStaysBounded(self):
        """
        However much arrives, a connection buffers at most the limit plus one
        read (here, one byte at a time past the limit closes it).
        """
        protocol, transport, sink = self.connect()
        stream = self.oversized() + b"y" * (2 * self.maxSize)
        for index in range(len(stream)):
            protocol.dataReceived(stream[index : index + 1])
            self.assertLessEqual(protocol.bufferedByteCount(), self.maxSize + 16)
        self.assertTrue(transport.disconnecting)

    def test_malformed(self):
        """
        Each malformed stream closes the connection with its reason, counted
        once, and publishes nothing, whether it arrives in one read or one
        byte at a time.
        """
        for data, reason in self.malformed:
            for reads in ([data], [data[i : i + 1] for i in range(len(data))]):
                protocol, transport, sink = self.connect()
                for read in reads:
                    protocol.dataReceived(read)
                self.assertTrue(transport.disconnecting, data)
                self.assertEqual(protocol.frameFailed, reason, data)
                self.assertEqual(protocol.factory.config.stats.frameErrors[reason], 1)
                self.assertEqual(sink.streams[0].messages, [], data)

    def test_connectionLostMidFrame(self):
        """
        A stream ending mid-frame publishes the whole messages before it,
        not the partial one, and counts an C{incomplete} event.
        """
        protocol, transport, sink = self.connect()
        whole = self.encode([b"whole"])
        partial = self.encode([b"partial message"])[:-2]
        protocol.dataReceived(whole + partial)
        self.finish(protocol)
        self.assertEqual(sink.streams[0].messages, [b"whole"])
        self.assertTrue(sink.streams[0].closed)
        self.assertEqual(protocol.factory.config.stats.frameErrors[INCOMPLETE], 1)

    def test_otherConnectionsUnaffected(self):
        """
        One connection closed for bad input leaves another connection on the
        same listener alone.
        """
        bad, badTransport, sink = self.connect()
        good, goodTransport, _ = self.connect(config=bad.factory.config, peerPort=40001)
        bad.dataReceived(self.oversized())
        messages = self.sampleMessages()
        good.dataReceived(self.encode(messages))
        self.finish(good)
        self.assertTrue(badTransport.disconnecting)
        self.assertFalse(goodTransport.disconnecting)
        self.assertSameMessages(sink.streams[1].messages, messages)

    def test_pauseHoldsBufferedMessages(self):
        """
        While paused, the transport is paused and messages already buffered
        are not delivered; resuming delivers them in order.
        """
        protocol, transport, sink = self.connect()
        messages = self.sampleMessages()
        protocol.pauseProducing()
        self.assertEqual(transport.producerState, "paused")
        protocol.dataReceived(self.encode(messages))
        self.assertEqual(sink.streams[0].messages, [])
        protocol.resumeProducing()
        self.assertEqual(transport.producerState, "producing")
        self.finish(protocol)
        self.assertSameMessages(sink.streams[0].messages, messages)

    def test_pauseInsideDelivery(self):
        """
        A pause requested while a message is being delivered (a full
        producer) stops delivery of the rest until resumed.
        """
        protocol, transport, sink = self.connect()
        stream = sink.streams[0]
        original = stream.send

        def sendThenPause(payload):
            original(payload)
            if len(stream.messages) == 1:
                protocol.pauseProducing()

        protocol._send = sendThenPause
        messages = self.sampleMessages()
        protocol.dataReceived(self.encode(messages))
        self.assertEqual(len(stream.messages), 1)
        protocol.resumeProducing()
        self.finish(protocol)
        self.assertSameMessages(stream.messages, messages)

    def bounceOnFirst(self, protocol, stream):
        """
        Make C{protocol} pause and resume from inside its first delivery, as
        a producer that fills and drains at once would.
        """
        original = stream.send

        def sendThenBounce(payload):
            original(payload)
            if len(stream.messages) == 1:
                protocol.pauseProducing()
                protocol.resumeProducing()

        protocol._send = sendThenBounce

    def test_resumeInsideDelivery(self):
        """
        Pausing and resuming inside a delivery delivers every message once,
        in order.
        """
        protocol, transport, sink = self.connect()
        self.bounceOnFirst(protocol, sink.streams[0])
        messages = self.sampleMessages()
        protocol.dataReceived(self.encode(messages))
        self.finish(protocol)
        self.assertSameMessages(sink.streams[0].messages, messages)

    def test_resumeInsideResumedDelivery(self):
        """
        Messages buffered while paused are delivered once each when a
        delivery that C{resumeProducing} started pauses and resumes again.
        """
        protocol, transport, sink = self.connect()
        messages = self.sampleMessages()
        protocol.pauseProducing()
        protocol.dataReceived(self.encode(messages))
        self.bounceOnFirst(protocol, sink.streams[0])
        protocol.resumeProducing()
        self.finish(protocol)
        self.assertSameMessages(sink.streams[0].messages, messages)

    def test_closedWhilePaused(self):
        """
        Whole messages read while paused are published when the connection
        closes before it is resumed: they were accepted, not lost.
        """
        protocol, transport, sink = self.connect()
        messages = self.sampleMessages()
        protocol.pauseProducing()
        protocol.dataReceived(self.encode(messages))
        self.finish(protocol)
        self.assertSameMessages(sink.streams[0].messages, messages)
        self.assertEqual(sum(protocol.factory.config.stats.frameErrors.values()), 0)

    def test_stopProducing(self):
        """
        C{stopProducing} stops delivery and tells the transport to stop.
        """
        protocol, transport, sink = self.connect()
        protocol.stopProducing()
        self.assertEqual(transport.producerState, "stopped")
        protocol.dataReceived(self.encode(self.sampleMessages()))
        self.assertEqual(sink.streams[0].messages, [])


class RecordingProducer:
    """
    Stands in for the producer service under a real L{Router}: records each
    C{produce} call's C{(topic, value, key, headers)}.
    """

    def __init__(self):
        self.records = []
        self.observer = None

    def produce(self, topic, value, key=None, headers=None):
        self.records.append((topic, value, key, headers))


class _CountingPlugin:
    """
    Forwards to a routing plugin, counting its C{connectionRouter} calls.
    """

    def __init__(self, plugin):
        self.plugin = plugin
        self.perMessage = plugin.perMessage
        self.calls = 0

    def connectionRouter(self, connection):
        self.calls += 1
        return self.plugin.connectionRouter(connection)


class RoutingConformanceMixin:
    """
    The conformance kit of routing plugins: mix into a
    C{twisted.trial.unittest.SynchronousTestCase} and set the attributes.
    Messages go through the gateway's own L{Router} and message streams.

    :cvar plugin: the L{IRoutingPlugin} under test.
    :cvar samples: C{(payload, topic)} pairs: where each payload must go.
    :cvar listenerTopic: the listener's topic during the tests.
    :cvar oddPayloads: payloads the plugin must route without raising (a
        router raising would close the client's connection).
    """

    plugin = None
    samples = ()
    listenerTopic = "gateway-test"
    oddPayloads = (b"", b"\xff\xfe", b"{", b"[]", b"null", b"\x00" * 64, b"{}" * 1000)

    def route(self, payloads, connections=1):
        """
        Send C{payloads} on each of C{connections} connections of one
        listener routed by the plugin.

        :return: the produced C{(topic, value, key, headers)} records and
            the plugin's counting wrapper.
        """
        producer = RecordingProducer()
        router = Router(producer, None)
        counting = _CountingPlugin(self.plugin)
        router.routes["l"] = Route(TopicTemplate(self.listenerTopic), "connection", counting)
        for index in range(connections):
            stream = router.openStream("l", f"192.0.2.{index + 1}:4000", object())
            for payload in payloads:
                stream.send(payload)
            stream.close()
        return producer.records, counting

    def test_providesInterface(self):
        """
        The plugin provides L{IRoutingPlugin}; C{perMessage} is a L{bool}.
        """
        verifyObject(IRoutingPlugin, self.plugin)
        self.assertIsInstance(self.plugin.perMessage, bool)

    def test_samples(self):
        """
        Each sample goes to its topic, its payload unchanged.
        """
        payloads = [payload for payload, _ in self.samples]
        records, _ = self.route(payloads)
        self.assertEqual(
            [(topic, value) for topic, value, _, _ in records],
            [(topic, payload) for payload, topic in self.samples],
        )

    def test_recordFields(self):
        """
        Every record has a legal topic name, a L{bytes} or no key, and a
        list of C{(str, bytes)} headers or none.
        """
        records, _ = self.route([payload for payload, _ in self.samples] + list(self.oddPayloads))
        for topic, _, key, headers in records:
            self.assertEqual(topicName(topic), topic)
            self.assertIsInstance(key, (bytes, type(None)))
            for name, value in headers or ():
                self.assertIsInstance(name, str)
                self.assertIsInstance(value, bytes)

    def test_oddPayloads(self):
        """
        Payloads the plugin does not expect are routed, not raised on.
        """
        records, _ = self.route(self.oddPayloads)
        self.assertEqual([value for _, value, _, _ in records], list(self.oddPayloads))

    def test_oncePerConnection(self):
        """
        The plugin is asked for a router once per connection, whatever the
        number of messages.
        """
        _, counting = self.route([payload for payload, _ in self.samples] * 3, connections=2)
        self.assertEqual(counting.calls, 2)

    def test_stable(self):
        """
        The same payload goes to the same topic on every connection.
        """
        payloads = [payload for payload, _ in self.samples]
        records, _ = self.route(payloads, connections=2)
        half = len(records) // 2
        self.assertEqual(
            [r[0] for r in records[:half]],
            [r[0] for r in records[half:]],
        )
