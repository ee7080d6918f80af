"""
Test doubles for confluent-kafka's C{Producer}: enough of its behaviour (a
bounded queue, callbacks served by C{poll}) to unit-test the service logic.
Integration tests use the real client against a real broker.
"""


class FakeKafkaError:
    def __init__(self, name, text="", fatal=False, retriable=False):
        self._name, self._text, self._fatal = name, text or name, fatal
        self._retriable = retriable

    def retriable(self):
        return self._retriable

    def code(self):
        return self._name

    def name(self):
        return self._name

    def str(self):
        return self._text

    def fatal(self):
        return self._fatal


class FakeMessage:
    def __init__(self, topic, value, key, headers):
        self._topic, self._value, self._key, self._headers = topic, value, key, headers

    def topic(self):
        return self._topic

    def value(self):
        return self._value

    def key(self):
        return self._key

    def headers(self):
        return self._headers


class FakeProducer:
    """
    A producer whose queue holds C{capacity} records until the test confirms
    them with L{confirm}.

    :ivar produced: every record accepted, in order.
    :ivar config: the configuration it was built with.
    :ivar refusing: payload -> the exception C{produce} raises for it, as
        a client with a bug would.
    """

    def __init__(self, config, capacity=1000):
        self.config = config
        self.capacity = capacity
        self.queue = []
        self.produced = []
        self.polls = 0
        self.pendingErrors = []
        self.clientErrors = []
        self.statistics = []
        self.brokerState = "UP"
        self.refusing = {}

    def produce(self, topic, value=None, key=None, headers=None, on_delivery=None):
        if value in self.refusing:
            raise self.refusing[value]
        if value is not None and len(value) > 100_000:
            raise RuntimeError("MSG_SIZE_TOO_LARGE")
        if len(self.queue) >= self.capacity:
            raise BufferError("Local: Queue full")
        message = FakeMessage(topic, value, key, headers)
        message.callback = on_delivery
        self.queue.append(message)
        self.produced.append(message)

    def confirm(self, count=None):
        """
        Kafka acknowledged the C{count} oldest records (all by default);
        with C{delivery.report.only.error} false, their reports wait for
        C{poll}.
        """
        count = len(self.queue) if count is None else count
        confirmed, self.queue[:count] = self.queue[:count], []
        if self.config.get("delivery.report.only.error") is False:
            self.pendingErrors.extend((None, message) for message in confirmed)

    def fail(self, error):
        """
        Kafka refused the oldest record; its report waits for C{poll}.
        """
        self.pendingErrors.append((error, self.queue.pop(0)))

    def purge(self, in_queue=True, in_flight=True):
        """
        Give up on every queued record: each is reported as purged.
        """
        for message in self.queue:
            self.pendingErrors.append((FakeKafkaError("_PURGE_QUEUE"), message))
        self.queue = []

    def reportError(self, error):
        """
        A client-wide error, served at the next poll.
        """
        self.clientErrors.append(error)

    def reportStatistics(self):
        """
        Statistics as librdkafka would send them, served at the next poll.
        """
        import json

        self.statistics.append(
            json.dumps(
                {
                    "msg_size": sum(len(m.value() or b"") for m in self.queue),
                    "brokers": {"b:1/1": {"nodeid": 1, "state": self.brokerState}},
                }
            )
        )

    def poll(self, timeout):
        self.polls += 1
        for error in self.clientErrors:
            self.config["error_cb"](error)
        self.clientErrors = []
        for text in self.statistics:
            self.config["stats_cb"](text)
        self.statistics = []
        errors, self.pendingErrors = self.pendingErrors, []
        for error, message in errors:
            (message.callback or self.config["on_delivery"])(error, message)
        return len(errors)

    def __len__(self):
        return len(self.queue)


def fakeProducerFactory(capacity=1000):
    """
    :return: a producer factory for L{gateway.kafka.KafkaProducerService}
        building L{FakeProducer}s with the given capacity.
    """
    return lambda config: FakeProducer(config, capacity)


def fakeBackend(capacity=1000):
    """
    :return: the confluent backend on L{FakeProducer}s; the producers made
        are in C{backend.producers}; while C{backend.refuse} is an exception,
        creating a producer raises it.
    """
    from gateway.kafka.confluent import ConfluentBackend

    producers = []

    def factory(config):
        if backend.refuse is not None:
            raise backend.refuse
        producer = FakeProducer(config, capacity)
        producers.append(producer)
        return producer

    class FakeConfluentBackend(ConfluentBackend):
        def checkConfig(self, config):
            pass

    backend = FakeConfluentBackend(factory)
    backend.producers = producers
    backend.refuse = None
    return backend
