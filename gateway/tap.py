# -*- test-case-name: tests.test_tap -*-
"""
C{twistd gateway}: the command line, and L{makeService}, the builder shared
with C{.tac} files (through L{gateway.service.GatewayService}).
"""

import sys

from twisted.application.service import MultiService
from twisted.python import usage

from gateway.framing.options import ACK_OPTIONS, OptionError, parseListen
from gateway.registry import FramingRegistry
from gateway.server.policy import CONNECTION_OPTIONS
from gateway.server.workers import WorkerGroup, parentWatch
from gateway.service import GatewayService
from gateway.settings import (
    DEFAULT_BACKEND,
    DEFAULT_BOOTSTRAP_SERVERS,
    DEFAULT_BUDGET,
    DEFAULT_DEAD_LETTER,
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_HEALTH_INTERVAL,
    DEFAULT_HTTP,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_RESERVE,
    DEFAULT_SPOOL,
    SettingsError,
    checkSettings,
)

__all__ = ["Options", "makeService"]


def _positiveInt(value):
    number = int(value)
    if number <= 0:
        raise ValueError("must be a positive integer")
    return number


_positiveInt.coerceDoc = "Must be a positive integer."


def _nonNegativeInt(value):
    number = int(value)
    if number < 0:
        raise ValueError("must not be negative")
    return number


_nonNegativeInt.coerceDoc = "Must be a whole number, 0 or more."


def _nonNegativeFloat(value):
    number = float(value)
    if number < 0:
        raise ValueError("must not be negative")
    return number


class Options(usage.Options):
    """
    Options of C{twistd gateway}; see C{twistd -n gateway --help}.
    """

    synopsis = "[options] --topic TOPIC --listen FRAMING=ENDPOINT [--listen ...]"

    optFlags = [
        [
            "no-headers",
            None,
            "Do not add the gateway-listener and gateway-peer headers to records "
            "(the key names both; saves about a third of the time per message).",
        ],
    ]

    optParameters = [
        [
            "bootstrap-servers",
            "b",
            DEFAULT_BOOTSTRAP_SERVERS,
            "Kafka bootstrap servers, host:port[,host:port...].",
        ],
        ["topic", "t", None, "Kafka topic every message goes to (required)."],
        [
            "max-message-size",
            "m",
            DEFAULT_MAX_MESSAGE_SIZE,
            "Largest message accepted, in bytes; a client sending a larger frame is disconnected.",
            _positiveInt,
        ],
        [
            "drain-timeout",
            None,
            DEFAULT_DRAIN_TIMEOUT,
            "Seconds to wait on shutdown for Kafka to confirm what was read.",
            _nonNegativeFloat,
        ],
        [
            "kafka-backend",
            None,
            DEFAULT_BACKEND,
            "Producer backend: confluent, or pykafka (Kafka <= 3.9, extra 'pykafka').",
        ],
        [
            "budget",
            None,
            DEFAULT_BUDGET,
            "Bytes read from clients and not yet confirmed by Kafka held at "
            "most; clients are paused above 80% and resumed below 50%.",
            _positiveInt,
        ],
        [
            "spool",
            None,
            DEFAULT_SPOOL,
            "File keeping records not delivered at shutdown, produced first at "
            "the next start ('none': keep nothing).",
        ],
        [
            "http",
            None,
            DEFAULT_HTTP,
            "Endpoint of /healthz, /readyz, /metrics and the status page ('none': no HTTP).",
        ],
        [
            "health-interval",
            None,
            DEFAULT_HEALTH_INTERVAL,
            "Seconds between health probes on the persistent connection to "
            "each broker (0: no health checks).",
            _nonNegativeFloat,
        ],
        [
            "reserve-descriptors",
            None,
            DEFAULT_RESERVE,
            "Descriptors kept for Kafka, HTTP, logs and the spool: listeners "
            "stop accepting (clients wait in the backlog) before client "
            "connections would take them.",
            _nonNegativeInt,
        ],
        [
            "workers",
            None,
            1,
            "Gateway processes sharing the listeners (every --listen endpoint "
            "then reuseport:PORT); this process is worker 1 and supervises the "
            "others. Worker K serves HTTP on the --http port + K-1.",
            _positiveInt,
        ],
        [
            "worker-index",
            None,
            1,
            "This process's number among the workers (set by --workers for "
            "the workers it starts).",
            _positiveInt,
        ],
        [
            "dead-letter",
            None,
            DEFAULT_DEAD_LETTER,
            "File receiving records Kafka refused for good ('none': only log them).",
        ],
    ]

    def __init__(self):
        usage.Options.__init__(self)
        self["listen"] = []
        self["kafka-options"] = {}
        self._failed = False

    def parseOptions(self, options=None):
        """
        Parse, remembering a failure so that L{getUsage} answers it with one
        line instead of the whole help.
        """
        if options is None:
            options = sys.argv[1:]
        self.arguments = list(options)
        try:
            usage.Options.parseOptions(self, options)
        except usage.UsageError:
            self._failed = True
            raise

    def opt_listen(self, value):
        """
        FRAMING[(OPTION=VALUE,...)]=ENDPOINT, e.g. 'lines(delimiter=\\r\\n)=tcp:9000' (repeatable).
        """
        try:
            self["listen"].append(parseListen(value))
        except OptionError as e:
            raise usage.UsageError(
                f"--listen {value!r}: {e}, e.g. lines=tcp:9000:interface=127.0.0.1"
            ) from e

    opt_l = opt_listen

    def opt_kafka_option(self, value):
        """
        KEY=VALUE librdkafka producer property, e.g. linger.ms=20 (repeatable).
        """
        key, sep, setting = value.partition("=")
        if not sep or not key.strip():
            raise usage.UsageError(
                f"--kafka-option {value!r}: expected KEY=VALUE, e.g. linger.ms=20"
            )
        self["kafka-options"][key.strip()] = setting.strip()

    def postOptions(self):
        """
        Refuse what cannot work before anything listens: no topic, no
        listener, an unknown framing, a malformed endpoint, producer
        settings the backend refuses, workers that cannot share the ports.
        The checked settings are kept (C{self["settings"]}) for
        L{makeService}.
        """
        if not self["topic"]:
            raise usage.UsageError("--topic is required")
        if not self["listen"]:
            raise usage.UsageError("at least one --listen FRAMING=ENDPOINT is required")
        for name in ("spool", "dead-letter", "http"):
            if self[name].lower() in ("", "none"):
                self[name] = None
        try:
            self["settings"] = checkSettings(
                [
                    {"framing": spec.framing, "endpoint": spec.endpoint, "options": spec.options}
                    for spec in self["listen"]
                ],
                topic=self["topic"],
                bootstrapServers=self["bootstrap-servers"],
                kafkaOptions=self["kafka-options"],
                maxMessageSize=self["max-message-size"],
                drainTimeout=self["drain-timeout"],
                backend=self["kafka-backend"],
                budget=self["budget"],
                spoolPath=self["spool"],
                deadLetterPath=self["dead-letter"],
                healthInterval=self["health-interval"] or None,
                headers=not self["no-headers"],
                http=self["http"],
                reserveDescriptors=self["reserve-descriptors"],
                workers=self["workers"],
                workerIndex=self["worker-index"],
            )
        except SettingsError as e:
            raise usage.UsageError(self._explain(e)) from e

    def _explain(self, error):
        """
        A refused setting's message in the command line's words.
        """
        if error.listener is not None:
            spec = self["listen"][error.listener]
            if error.setting == "endpoint":
                return str(error)
            return f"--listen {spec.framing}...={spec.endpoint}: {error}"
        if error.setting == "kafkaOptions":
            return f"Kafka producer settings: {error}"
        if error.setting == "backend":
            return f"--kafka-backend: {error}"
        if error.setting == "workerIndex":
            return f"--worker-index {self['worker-index']} is over --workers {self['workers']}"
        if error.setting == "workers":
            return f"--workers {self['workers']}: {error}"
        return str(error)

    def getUsage(self, width=None):
        """
        The option help, followed by the framings available; after a usage
        error (twistd prints this above the error), only the synopsis.
        """
        if self._failed:
            return "(twistd gateway --help lists every option and framing)"
        text = usage.Options.getUsage(self, width)
        return text + "\n" + describeFramings(FramingRegistry())


def describeFramings(registry):
    """
    The framings section of the help: each framing, its options with their
    kinds and defaults, and any plugin that could not be loaded.
    """
    lines = [
        "Framings (--listen FRAMING[(OPTION=VALUE,...)]=ENDPOINT; every "
        "framing also takes max-size=BYTES):"
    ]
    for name in sorted(registry.plugins):
        plugin = registry.plugins[name]
        lines.append(f"  {name:<18} {plugin.description}")
        for option in plugin.options:
            default = option.default
            if isinstance(default, bytes):
                default = repr(default)[2:-1]
            lines.append(f"      {option.name}={option.kind}  {option.help} [default: {default}]")
    for error in registry.errors:
        lines.append(f"  (unavailable) {error}")
    lines.append("")
    lines.append(
        "Connection options, for every framing (e.g. "
        "lines(max-per-address=100,idle-timeout=300)=tcp:9000):"
    )
    for option in CONNECTION_OPTIONS + ACK_OPTIONS:
        default = "none" if option.default is None else option.default
        lines.append(f"  {option.name}={option.kind}  {option.help} [default: {default}]")
    return "\n".join(lines) + "\n"


def makeService(options):
    """
    Build the gateway's service tree from parsed L{Options}.

    :return: a L{GatewayService}; with C{--workers} N > 1, worker 1's
        process gets a L{MultiService} of its L{GatewayService} and the
        L{WorkerGroup} running the others.
    """
    from twisted.internet import reactor

    service = GatewayService.fromSettings(options["settings"], reactor)
    count, index = options["workers"], options["worker-index"]
    if count == 1:
        return service
    if index > 1:
        # A worker started by the group: stop (and drain) if the group's
        # process is gone.
        parentWatch(reactor, reactor.stop).setServiceParent(service)
        return service
    group = MultiService()
    service.setServiceParent(group)
    WorkerGroup(
        reactor,
        options.arguments,
        count,
        options["http"],
        options["spool"],
        options["dead-letter"],
        options["drain-timeout"],
    ).setServiceParent(group)
    return group
