# -*- test-case-name: tests.test_tap -*-
"""
C{twistd gateway}: the command line, and L{makeService}, the builder shared
with C{.tac} files (through L{gateway.service.GatewayService}).
"""

import sys

from twisted.application.service import MultiService
from twisted.logger import Logger
from twisted.python import usage

from gateway import __version__
from gateway.check import walkServices
from gateway.errors import (
    StartupError,
    StartupGuard,
    debugRequested,
    describe,
    installHook,
    report,
)
from gateway.framing.options import ACK_OPTIONS, OptionError, parseListen
from gateway.kafka.credentials import isSecret, readOptionEnv, readOptionFile, workerSecrets
from gateway.logs import logRate
from gateway.paths import logFileProblem
from gateway.registry import FramingRegistry
from gateway.server.policy import CONNECTION_OPTIONS
from gateway.server.tls import TLS_OPTIONS
from gateway.server.workers import WorkerGroup, parentWatch
from gateway.service import GatewayService, exitWithStatus
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
    SettingsCheck,
    SettingsError,
    checkSettings,
)

__all__ = ["Options", "buildService", "makeService", "versions"]


def _number(option, parse, minimum, expected, example):
    """
    A coercer for C{--option} whose errors name the option, say what it
    expected and give an example, as every other refusal does (twistd's own
    would say only C{Parameter type enforcement failed}).

    :param parse: L{int} or L{float}.
    :param minimum: the smallest value allowed.
    :param expected: what a right value is, e.g. C{"a whole number of bytes,
        1 or more"}.
    :param example: a right value.
    """

    def coerce(value):
        try:
            number = parse(value)
        except ValueError:
            number = None
        if number is None or not number >= minimum or number != number or number == float("inf"):
            raise usage.UsageError(
                f"--{option} {value!r}: expected {expected}, e.g. --{option} {example}"
            )
        return number

    coerce.coerceDoc = f"Must be {expected}."
    return coerce


class Options(usage.Options):
    """
    Options of C{twistd gateway}; see C{twistd -n gateway --help}.
    """

    synopsis = "[options] [--topic TOPIC] --listen FRAMING[(topic=...)]=ENDPOINT [--listen ...]"

    optFlags = [
        [
            "no-headers",
            None,
            "Do not add the gateway-listener and gateway-peer headers to records "
            "(the key names both; saves about a third of the time per message).",
        ],
        [
            "check",
            None,
            "Check the options, framings, backend and paths, print what was "
            "checked and exit (0: all good, 1: not) without starting.",
        ],
        [
            "check-kafka",
            None,
            "With --check: also connect to the bootstrap servers and check "
            "that each listener's topic exists and that the producer may write to it.",
        ],
    ]

    optParameters = [
        [
            "bootstrap-servers",
            "b",
            DEFAULT_BOOTSTRAP_SERVERS,
            "Kafka bootstrap servers, host:port[,host:port...].",
        ],
        [
            "topic",
            "t",
            None,
            "Kafka topic of listeners without their own topic= "
            "(required unless every listener names one).",
        ],
        [
            "max-message-size",
            "m",
            DEFAULT_MAX_MESSAGE_SIZE,
            "Largest message accepted, in bytes; a client sending a larger frame is disconnected.",
            _number("max-message-size", int, 1, "a whole number of bytes, 1 or more", 65536),
        ],
        [
            "drain-timeout",
            None,
            DEFAULT_DRAIN_TIMEOUT,
            "Seconds to wait on shutdown for Kafka to confirm what was read.",
            _number("drain-timeout", float, 0, "a number of seconds, 0 or more", 30),
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
            _number("budget", int, 1, "a whole number of bytes, 1 or more", 67108864),
        ],
        [
            "incomplete-cap",
            None,
            None,
            "Bytes of incomplete frames held at most, all connections "
            "together (default: half of --budget); over it the connections "
            "holding the most are closed.",
            _number("incomplete-cap", int, 1, "a whole number of bytes, 1 or more", 33554432),
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
            _number("health-interval", float, 0, "a number of seconds, 0 or more", 5),
        ],
        [
            "reserve-descriptors",
            None,
            DEFAULT_RESERVE,
            "Descriptors kept for Kafka, HTTP, logs and the spool: listeners "
            "stop accepting (clients wait in the backlog) before client "
            "connections would take them.",
            _number("reserve-descriptors", int, 0, "a whole number of descriptors, 0 or more", 64),
        ],
        [
            "workers",
            None,
            1,
            "Gateway processes sharing the listeners (every --listen endpoint "
            "then reuseport:PORT); this process is worker 1 and supervises the "
            "others. Worker K serves HTTP on the --http port + K-1.",
            _number("workers", int, 1, "a whole number of processes, 1 or more", 2),
        ],
        [
            "worker-index",
            None,
            1,
            # Internal: set by --workers for the workers it starts; hidden
            # from --help (see getUsage).
            "",
            _number("worker-index", int, 1, "a whole number, 1 or more", 2),
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
        #: Secret properties given with --kafka-option (visible in ps).
        self.inlineSecrets = []
        self._failed = False

    def parseOptions(self, options=None):
        """
        Parse, remembering a failure so that L{getUsage} answers it with one
        line instead of the whole help.

        Under twistd (a parent command), a usage error is one line on
        standard error and exit status 1 (twistd would print the help and
        the error on standard output); alone, as in tests and Python code,
        it raises L{usage.UsageError}.
        """
        if options is None:
            options = sys.argv[1:]
        self.arguments = list(options)
        try:
            usage.Options.parseOptions(self, options)
        except usage.UsageError as e:
            self._failed = True
            if getattr(self, "parent", None) is None or debugRequested():
                raise
            report(e, sys.stderr)
            raise SystemExit(1) from None

    def opt_version(self):
        """
        Print the versions of the gateway, Twisted, librdkafka and Python, and exit.
        """
        sys.stdout.write(versions() + "\n")
        sys.stdout.flush()
        raise SystemExit(0)

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
        if isSecret(key.strip()):
            self.inlineSecrets.append(key.strip())

    def opt_kafka_option_file(self, value):
        """
        KEY=PATH: the property KEY is the file's content, e.g.
        sasl.password=/run/secrets/kafka (repeatable; for secrets).
        """
        try:
            key, setting = readOptionFile(value)
        except ValueError as e:
            raise usage.UsageError(str(e)) from None
        self["kafka-options"][key] = setting

    def opt_kafka_option_env(self, value):
        """
        KEY=VARIABLE: the property KEY is the environment variable's value,
        e.g. sasl.password=KAFKA_PASSWORD (repeatable; for secrets).
        """
        try:
            key, setting = readOptionEnv(value)
        except ValueError as e:
            raise usage.UsageError(str(e)) from None
        self["kafka-options"][key] = setting

    def postOptions(self):
        """
        Refuse what cannot work before anything listens: no topic, no
        listener, an unknown framing, a malformed endpoint, producer
        settings the backend refuses, workers that cannot share the ports.
        The checked settings are kept (C{self["settings"]}) for
        L{makeService}.
        """
        if not self["listen"]:
            raise usage.UsageError("at least one --listen FRAMING=ENDPOINT is required")
        for name in ("spool", "dead-letter", "http"):
            if self[name].lower() in ("", "none"):
                self[name] = None
        # --check reports each unwritable path as a line of its own.
        problem = None if self["check"] else logFileProblem(self.parent)
        if problem is not None:
            raise usage.UsageError(problem)
        if self["check-kafka"] and not self["check"]:
            raise usage.UsageError("--check-kafka goes with --check")
        try:
            logRate()
        except ValueError as e:
            raise usage.UsageError(str(e)) from e
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
                incompleteCap=self["incomplete-cap"],
                check=SettingsCheck(paths=not self["check"]),
            )
        except SettingsError as e:
            raise usage.UsageError(self._explain(e)) from e
        self.workerArguments = (self.arguments, {})
        if self["workers"] > 1:
            try:
                self.workerArguments = workerSecrets(self.arguments, self["kafka-options"])
            except ValueError as e:
                raise usage.UsageError(str(e)) from None

    def _explain(self, error):
        """
        A refused setting's message in the command line's words.
        """
        if error.listener is not None:
            spec = self["listen"][error.listener]
            if error.setting == "topic":
                return f"--listen {spec.framing}...={spec.endpoint}: {error} (--topic)"
            return f"--listen {spec.framing}...={spec.endpoint}: {error}"
        if error.setting == "kafkaOptions":
            key = getattr(error, "option", None)
            if key is not None:
                value = "..." if isSecret(key) else self["kafka-options"][key]
                return f"--kafka-option {key}={value}: {error}"
            return f"Kafka producer settings: {error}"
        if error.setting == "http":
            return f"--http {self['http']}: {error}"
        if error.setting == "bootstrapServers":
            return f"--bootstrap-servers {self['bootstrap-servers']!r}: {error}"
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
        # --worker-index is for the workers --workers starts, not for people.
        text = "\n".join(line for line in text.split("\n") if "--worker-index" not in line)
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
            lines.append(
                f"      {option.name}={option.kind}  {option.help}{_default(option, default)}"
            )
    for error in registry.errors:
        lines.append(f"  (unavailable) {error}")
    lines.append("")
    lines.append(
        "Connection options, for every framing (e.g. "
        "lines(max-per-address=100,idle-timeout=300)=tcp:9000):"
    )
    lines.extend(_optionLine(option) for option in CONNECTION_OPTIONS + ACK_OPTIONS)
    lines.append("")
    lines.append(
        "TLS options, for every framing (e.g. lines(tls-cert=cert.pem,tls-key=key.pem)=tcp:6514; "
        "SIGHUP reloads the files):"
    )
    lines.extend(_optionLine(option) for option in TLS_OPTIONS)
    return "\n".join(lines) + "\n"


def _optionLine(option):
    """
    One listener option's line in the help.
    """
    default = "none" if option.default is None else option.default
    return f"  {option.name}={option.kind}  {option.help}{_default(option, default)}"


def _default(option, default):
    """
    The C{[default: ...]} after an option's help, unless the help says the
    default itself (one that depends on something else, or is nothing).
    """
    return "" if "default" in option.help else f" [default: {default}]"


def versions():
    """
    :return: one line naming the versions of the gateway and of what it runs
        on: Twisted, confluent-kafka and librdkafka, Python.
    """
    import platform

    import twisted

    try:
        import confluent_kafka

        kafka = f"confluent-kafka {confluent_kafka.version()}, "
        kafka += f"librdkafka {confluent_kafka.libversion()[0]}"
    except ImportError:
        kafka = "confluent-kafka not installed"
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"kafka-gateway {__version__} (Twisted {twisted.__version__}, {kafka}, {python})"


def makeService(options):
    """
    What twistd runs: with C{--check}, the check (which ends the process);
    otherwise L{buildService}'s tree under a L{StartupGuard}, so that a
    port that cannot be bound is one line naming its option and exit
    status 1, not a traceback.
    """
    installHook()
    if options["check"]:
        from gateway.check import runCheck

        twistd = getattr(options, "parent", None)
        status = runCheck(options["settings"], kafka=options["check-kafka"], twistd=twistd)
        raise SystemExit(status)
    try:
        service = buildService(options)
    except Exception as e:
        if debugRequested():
            raise
        raise StartupError(describe(e)) from None
    guard = StartupGuard(explain=lambda error: explainStart(service, error))
    service.setServiceParent(guard)
    return guard


def explainStart(root, error):
    """
    The line for a failure to start C{root}: the error, after the option
    of the first listener or HTTP endpoint left unbound (the one that
    failed: they bind in order).
    """
    for service in walkServices(root):
        description = getattr(service, "description", None)
        config = getattr(service, "config", None)
        if getattr(service, "port", False) is None:
            if config is not None and hasattr(config, "endpoint"):
                return f"--listen {config.framing}={config.endpoint}: {describe(error)}"
            if description is not None:
                return f"--http {description}: {describe(error)}"
    return describe(error)


def buildService(options):
    """
    Build the gateway's service tree from parsed L{Options}.

    :return: a L{GatewayService}; with C{--workers} N > 1, worker 1's
        process gets a L{MultiService} of its L{GatewayService} and the
        L{WorkerGroup} running the others.
    """
    from twisted.internet import reactor

    if options.inlineSecrets and options["worker-index"] == 1:
        Logger().warn(
            "--kafka-option {names}: a secret on the command line is visible to every "
            "user (ps); give it with --kafka-option-file or --kafka-option-env",
            names=", ".join(options.inlineSecrets),
        )
    service = GatewayService.fromSettings(options["settings"], reactor)
    twistd = getattr(options, "parent", None) or {}
    exitWithStatus(reactor, service, pidfile=twistd.get("pidfile"))
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
    arguments, environment = options.workerArguments
    workers = WorkerGroup(
        reactor,
        arguments,
        count,
        options["http"],
        options["spool"],
        options["dead-letter"],
        options["drain-timeout"],
        environment,
    )
    workers.setServiceParent(group)
    if service.certificates is not None:
        # One SIGHUP to the twistd process reloads every worker's TLS files.
        service.certificates.forwardTo.append(workers.signalWorkers)
    return group
