# -*- test-case-name: tests.test_settings -*-
"""
Checking a gateway's settings before anything is built: the one check that
the command line (L{gateway.tap}) and the Python API
(L{gateway.service.GatewayService}) share, so a setting is refused for the
same reason whichever way it was given, and framing plugins and producer
backends are scanned once per start.

The defaults of both live here too, so C{--help} and C{GatewayService}
cannot drift apart.
"""

from dataclasses import dataclass, replace

from gateway.framing.options import ACK, MAX_SIZE, resolveOptions
from gateway.kafka.health import DEFAULT_INTERVAL as DEFAULT_HEALTH_INTERVAL
from gateway.kafka.health import parseBootstrap
from gateway.kafka.producer import DEFAULT_DRAIN_TIMEOUT, ackProblem, producerConfig
from gateway.kafka.security import securityFromConfig
from gateway.paths import fileProblem, unixSocketPath
from gateway.registry import (
    DEFAULT_BACKEND,
    FramingError,
    FramingRegistry,
    loadBackends,
    loadRouting,
)
from gateway.router import DEFAULT_BUDGET
from gateway.routing import Route, fixedTopic, keyStrategy, topicTemplate
from gateway.server.descriptors import DEFAULT_RESERVE
from gateway.server.policy import ConnectionPolicy, splitOptions
from gateway.server.tls import TLSSettings, splitTLSOptions

__all__ = [
    "DEFAULT_BACKEND",
    "DEFAULT_BOOTSTRAP_SERVERS",
    "DEFAULT_BUDGET",
    "DEFAULT_DEAD_LETTER",
    "DEFAULT_DRAIN_TIMEOUT",
    "DEFAULT_HEALTH_INTERVAL",
    "DEFAULT_HTTP",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_RESERVE",
    "DEFAULT_SPOOL",
    "GatewaySettings",
    "ListenerSettings",
    "SettingsCheck",
    "SettingsError",
    "checkSettings",
    "missingListenerTopics",
]

#: The Kafka cluster unless told otherwise: a broker on this host.
DEFAULT_BOOTSTRAP_SERVERS = "127.0.0.1:9092"

#: Large enough for most client messages and safely under Kafka's default
#: broker limit (C{message.max.bytes} = 1048588) with key and headers.
DEFAULT_MAX_MESSAGE_SIZE = 512 * 1024

#: Records not delivered at stop, produced first at the next start.
DEFAULT_SPOOL = "gateway-spool.jsonl"

#: Records Kafka refused for good.
DEFAULT_DEAD_LETTER = "gateway-dead-letter.jsonl"

#: Where the command line's HTTP endpoints listen unless told otherwise
#: (C{GatewayService} serves no HTTP unless given an endpoint).
DEFAULT_HTTP = "tcp:8080:interface=127.0.0.1"


class SettingsError(ValueError):
    """
    One setting is wrong.

    C{str()} is the reason; the command line adds the option's name.

    :ivar setting: the name of the L{GatewayService} or C{addListener}
        parameter: C{"topic"}, C{"backend"}, C{"kafkaOptions"}, C{"http"},
        C{"workers"}, C{"workerIndex"}, C{"listeners"}, or, for one
        listener, C{"framing"}, C{"options"} or C{"endpoint"}.
    :ivar listener: the position of the listener the setting belongs to,
        or L{None}.
    :ivar option: for C{"kafkaOptions"}, the producer property at fault, or
        L{None} when no one property is.
    """

    option = None

    def __init__(self, setting, reason, listener=None):
        ValueError.__init__(self, reason)
        self.setting = setting
        self.listener = listener


@dataclass(frozen=True)
class ListenerSettings:
    """
    One listener's checked settings.

    :ivar framing: the framing as given (a name or a dotted path).
    :ivar plugin: its L{gateway.interfaces.IFramingPlugin}.
    :ivar endpoint: the server endpoint description.
    :ivar name: the listener's name, or L{None} for the framing's.
    :ivar options: the framing's options, coerced, with C{max-size}.
    :ivar policy: the L{ConnectionPolicy}.
    :ivar tls: the L{TLSSettings}, or L{None} for plain TCP.
    :ivar route: the L{gateway.routing.Route}: topic template, key
        strategy, routing plugin.
    """

    framing: str
    plugin: object
    endpoint: str
    name: str
    options: dict
    policy: ConnectionPolicy
    tls: TLSSettings = None
    route: Route = Route()


@dataclass(frozen=True)
class GatewaySettings:
    """
    A gateway's checked settings, from which
    L{GatewayService.fromSettings<gateway.service.GatewayService.fromSettings>}
    builds the service without checking again.

    The attributes are L{GatewayService}'s parameters, with C{backend} the
    backend plugin itself and C{config} the producer configuration, plus
    the worker count and index and the listeners.

    :ivar check: the L{SettingsCheck} that checked them (and holds the
        framings and backends it found), for listeners added later.
    """

    topic: str
    bootstrapServers: str
    backend: object
    config: dict
    maxMessageSize: int
    drainTimeout: float
    budget: int
    spoolPath: str
    deadLetterPath: str
    healthInterval: float
    headers: bool
    http: str
    reserveDescriptors: int
    workers: int
    workerIndex: int
    listeners: tuple
    check: object
    incompleteCap: int = None


class SettingsCheck:
    """
    The checks of every setting, against the framings and producer backends
    of this process, each scanned at most once (when first needed).

    Its methods raise the L{ValueError} of the setting at fault (a
    L{gateway.registry.FramingError} for a framing, a
    L{gateway.framing.options.OptionError} for an option), as
    C{GatewayService} and C{addListener} always have; L{checkSettings}
    turns them into a L{SettingsError} naming the setting.
    """

    def __init__(self, registry=None, backends=None, paths=True):
        """
        :param registry: the L{FramingRegistry}; scanned when first needed
            by default.
        :param backends: backend name to plugin; scanned when first needed
            by default.
        :param paths: refuse files and sockets that cannot be written;
            L{False} for C{--check}, which reports each of them itself
            (L{gateway.check.checkPaths}).
        """
        self._registry = registry
        self._backends = backends
        self.paths = paths

    @property
    def registry(self):
        """
        The L{FramingRegistry}, scanned on first use.
        """
        if self._registry is None:
            self._registry = FramingRegistry()
        return self._registry

    @property
    def backends(self):
        """
        Backend name to L{gateway.interfaces.IProducerBackend}, scanned on
        first use.
        """
        if self._backends is None:
            self._backends = loadBackends()
        return self._backends

    def gateway(
        self,
        topic,
        bootstrapServers=DEFAULT_BOOTSTRAP_SERVERS,
        kafkaOptions=None,
        maxMessageSize=DEFAULT_MAX_MESSAGE_SIZE,
        drainTimeout=DEFAULT_DRAIN_TIMEOUT,
        backend=DEFAULT_BACKEND,
        budget=DEFAULT_BUDGET,
        spoolPath=DEFAULT_SPOOL,
        deadLetterPath=DEFAULT_DEAD_LETTER,
        healthInterval=DEFAULT_HEALTH_INTERVAL,
        headers=True,
        http=None,
        reserveDescriptors=DEFAULT_RESERVE,
        workers=1,
        workerIndex=1,
        incompleteCap=None,
    ):
        """
        Check the settings of the whole gateway but its listeners' (see
        L{listener}); the parameters are L{GatewayService}'s.

        :param backend: a backend's name, or an
            L{gateway.interfaces.IProducerBackend} (taken as it is).
        :rtype: L{GatewaySettings}
        :raises ValueError: for the first setting that is wrong.
        """
        if topic is not None and not topic:
            raise SettingsError("topic", "the default Kafka topic must not be empty")
        maxMessageSize = _positive("maxMessageSize", maxMessageSize)
        budget = _positive("budget", budget)
        if incompleteCap is not None:
            incompleteCap = _positive("incompleteCap", incompleteCap)
        if isinstance(backend, str):
            if backend not in self.backends:
                raise SettingsError(
                    "backend",
                    f"unknown producer backend {backend!r}; available: "
                    + ", ".join(sorted(self.backends)),
                )
            backend = self.backends[backend]
        try:
            parseBootstrap(bootstrapServers)
        except ValueError as e:
            raise SettingsError("bootstrapServers", str(e)) from e
        config = producerConfig(bootstrapServers, kafkaOptions, maxMessageSize, budget)
        try:
            # The gateway's own check first: its reasons name the property
            # missing (librdkafka's would name what it defaults to).
            securityFromConfig(config)
        except ValueError as e:
            raise SettingsError("kafkaOptions", str(e)) from e
        try:
            backend.checkConfig(config)
        except SettingsError:
            raise
        except ValueError as e:
            raise _refusedOption(backend, config, kafkaOptions, e) from e
        if http is not None:
            checkEndpoint(http, "malformed HTTP endpoint")
        if self.paths:
            if http is not None:
                checkSocketPath(http, "http")
            checkWritable("spoolPath", "--spool", spoolPath)
            checkWritable("deadLetterPath", "--dead-letter", deadLetterPath)
        if reserveDescriptors is not None and (
            isinstance(reserveDescriptors, bool)
            or not isinstance(reserveDescriptors, int)
            or reserveDescriptors < 0
        ):
            raise SettingsError(
                "reserveDescriptors",
                "reserveDescriptors must be a whole number "
                f"of descriptors, not {reserveDescriptors!r}",
            )
        settings = GatewaySettings(
            topic=topic,
            bootstrapServers=bootstrapServers,
            backend=backend,
            config=config,
            maxMessageSize=maxMessageSize,
            drainTimeout=drainTimeout,
            budget=budget,
            spoolPath=spoolPath,
            deadLetterPath=deadLetterPath,
            healthInterval=healthInterval,
            headers=headers,
            http=http,
            reserveDescriptors=reserveDescriptors,
            workers=_positive("workers", workers),
            workerIndex=_positive("workerIndex", workerIndex),
            listeners=(),
            check=self,
            incompleteCap=incompleteCap,
        )
        return settings

    def listener(
        self,
        framing,
        endpoint,
        name=None,
        maxMessageSize=None,
        options=None,
        *,
        default,
        topic=None,
    ):
        """
        Check one listener; the parameters are C{addListener}'s.

        :param default: the gateway's message size limit, for a listener
            given none.
        :param topic: the gateway's topic, for a listener naming none
            (L{None}: the listener must name its own).
        :rtype: L{ListenerSettings}
        :raises gateway.registry.FramingError: for an unknown framing.
        :raises ValueError: for a malformed endpoint, option or limit.
        """
        plugin = self.registry.get(framing)
        given, connection = splitOptions(dict(options or {}))
        tls, given = splitTLSOptions(given)
        if maxMessageSize is not None:
            given.setdefault(MAX_SIZE, _positive("maxMessageSize", maxMessageSize))
        resolved = resolveOptions(plugin, given, default)
        policy = ConnectionPolicy.fromOptions(connection, endpoint)
        ack = bool(resolved.get(ACK))
        route = self.route(connection, topic, ack)
        checkEndpoint(endpoint, "malformed endpoint")
        if self.paths:
            checkSocketPath(endpoint, "endpoint")
        tls = TLSSettings.fromOptions(tls, endpoint)
        route.check(ack, tls is not None and tls.clientCA is not None)
        return ListenerSettings(framing, plugin, endpoint, name, resolved, policy, tls, route)

    def route(self, options, topic=None, ack=False):
        """
        Check a listener's routing options (C{topic}, C{key}, C{routing}).

        :param options: the listener's connection options, by name.
        :param topic: the gateway's topic, or L{None}.
        :param ack: whether the listener has C{ack=on} (its default key is
            then C{session}, unless a routing plugin chooses).
        :rtype: L{gateway.routing.Route}
        :raises SettingsError: when the listener has no topic at all, or
            its routing plugin cannot be loaded.
        """
        template = options.get("topic")
        template = topicTemplate(template) if template is not None else None
        plugin = options.get("routing")
        key = options.get("key") or ("session" if ack and plugin is None else "connection")
        key = keyStrategy(key)
        if plugin is not None:
            try:
                plugin = loadRouting(str(plugin).strip())
            except ValueError as e:
                raise SettingsError("options", f"routing={plugin}: {e}") from e
        if template is None and topic is None and plugin is None:
            raise SettingsError(
                "topic", "no Kafka topic: give the listener topic=NAME, or a default topic"
            )
        return Route(template, key, plugin)

    def workers(self, settings):
        """
        Check that C{settings.workers} processes can share the listeners and
        HTTP endpoints of C{settings}.

        :raises SettingsError: when they cannot.
        """
        if settings.workerIndex > settings.workers:
            raise SettingsError(
                "workerIndex",
                f"workerIndex {settings.workerIndex} is over workers {settings.workers}",
            )
        if settings.workers == 1:
            return
        # Not at module level: gateway.server.workers imports Twisted's
        # procmon, which installs the default reactor, and importing
        # gateway.service must not (a .tac file may choose another).
        from gateway.server.workers import offsetPort, sharedPort

        try:
            for spec in settings.listeners:
                sharedPort(spec.endpoint)
            if settings.http is not None:
                offsetPort(settings.http, settings.workers - 1)
        except ValueError as e:
            raise SettingsError("workers", str(e)) from e


def checkSettings(listeners, check=None, **settings):
    """
    Check every setting of a gateway at once, as the command line does: the
    gateway's settings, then each listener's (as C{GatewayService} and then
    C{addListener} would), then whether the workers can share them.

    :param listeners: for each listener, a L{dict} of C{addListener}'s
        parameters (C{framing}, C{endpoint}, C{name}, C{maxMessageSize},
        C{options}).
    :param check: the L{SettingsCheck}; a new one (which scans the plugins
        when it needs them) by default.
    :param settings: L{SettingsCheck.gateway}'s parameters.
    :rtype: L{GatewaySettings}
    :raises SettingsError: naming the first setting that is wrong.
    """
    check = SettingsCheck() if check is None else check
    gateway = check.gateway(**settings)
    if not listeners:
        raise SettingsError("listeners", "at least one listener is required")
    checked = []
    for index, listener in enumerate(listeners):
        try:
            checked.append(
                check.listener(**listener, default=gateway.maxMessageSize, topic=gateway.topic)
            )
        except SettingsError as e:
            raise SettingsError(e.setting, str(e), index) from e
        except FramingError as e:
            raise SettingsError("framing", str(e), index) from e
        except ValueError as e:
            raise SettingsError("options", str(e), index) from e
        problem = checked[-1].options.get(ACK) and ackProblem(gateway.backend, gateway.config)
        if problem:
            raise SettingsError("options", problem, index)
    gateway = replace(gateway, listeners=tuple(checked))
    check.workers(gateway)
    return gateway


def checkEndpoint(description, problem):
    """
    Parse a server endpoint description without listening, against a
    reactor that cannot listen, so a typo is refused at once and not when
    the gateway starts.

    :param problem: the start of the error message, e.g. C{"malformed
        endpoint"}.
    :raises SettingsError: when it does not parse.
    """
    from twisted.internet.endpoints import serverFromString
    from twisted.internet.testing import MemoryReactor

    try:
        serverFromString(MemoryReactor(), description)
    except Exception as e:
        setting = "http" if "HTTP" in problem else "endpoint"
        raise SettingsError(setting, f"{problem} {description!r}: {_reason(e)}") from e


def _reason(error):
    """
    An endpoint parser's complaint in words: Twisted lets C{int()}'s own
    message through for a port that is not a number.
    """
    text = str(error)
    literal = "invalid literal for int() with base 10: "
    if isinstance(error, ValueError) and text.startswith(literal):
        return f"expected a number, not {text[len(literal) :]}"
    return text


def _refusedOption(backend, config, given, error):
    """
    The L{SettingsError} for producer settings the backend refused, naming
    the one given option at fault when there is one: librdkafka names
    the property it checked, which for an alias (C{linger.ms}) is another
    name (C{queue.buffering.max.ms}).
    """
    for key, value in (given or {}).items():
        alone = {k: v for k, v in config.items() if k not in given}
        alone[key] = value
        try:
            backend.checkConfig(alone)
        except ValueError as e:
            refused = SettingsError("kafkaOptions", f"refused: {e}")
            refused.option = key
            return refused
    return SettingsError("kafkaOptions", str(error))


def checkWritable(setting, option, path):
    """
    Refuse a file the gateway will write (the spool, the dead-letter file)
    where it cannot: a missing directory, no write permission, a read-only
    file system.

    :param setting: the setting's name, for L{SettingsError}.
    :param option: the command line's option, named in the message.
    :param path: the file's path, or L{None} (none is written).
    :raises SettingsError: naming the option and the path.
    """
    if path is None:
        return
    problem = fileProblem(path)
    if problem is not None:
        raise SettingsError(setting, f"{option} {path}: cannot write there: {problem}")


def checkSocketPath(description, setting):
    """
    Refuse a C{unix:} endpoint whose socket cannot be created.

    :param description: an endpoint description that parses.
    :param setting: C{"endpoint"} or C{"http"}, for L{SettingsError}.
    :raises SettingsError: naming the socket and the directory (the
        command line adds the option).
    """
    path = unixSocketPath(description)
    problem = None if path is None else fileProblem(path)
    if problem is not None:
        raise SettingsError(setting, f"cannot create the socket {path}: {problem}")


def _positive(what, value):
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise SettingsError(what, f"{what} must be a positive integer, not {value!r}")
    return value


def missingListenerTopics(settings, timeout=10.0):
    """
    The listeners whose fixed topic does not exist in a cluster that will
    not create it (for C{--check}; at run time their records would be
    dead-lettered).  Asks the cluster once.

    :param settings: L{GatewaySettings} from L{checkSettings}.
    :return: C{(listener, topic)} pairs, the listener named as given (or
        by its framing), in the listeners' order.
    :raises Exception: confluent-kafka's, when the cluster does not answer.
    """
    from gateway.kafka.topics import missingTopics

    fixed = [
        (listener.name or listener.plugin.name, fixedTopic(listener.route, settings.topic))
        for listener in settings.listeners
    ]
    fixed = [(name, topic) for name, topic in fixed if topic is not None]
    missing = set(missingTopics(settings.config, {topic for _, topic in fixed}, timeout))
    return [(name, topic) for name, topic in fixed if topic in missing]
