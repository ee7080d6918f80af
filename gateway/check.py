# -*- test-case-name: tests.test_check -*-
"""
The validate command, as C{vector validate} or Logstash's
C{--config.test_and_exit}: C{twistd gateway --check ...} and
C{gateway-check FILE.tac} say whether a configuration would start, without
starting it, and with C{--check-kafka} whether its topics are there to write
to. A deployment can run it before it replaces a running gateway.

It prints one line per thing checked (C{ok} or C{FAIL} first) and returns
the exit status: 0 when everything passed, 1 when not.
"""

import logging
import sys

from gateway.errors import StartupError, describe, report
from gateway.paths import fileProblem, logFilePath, unixSocketPath
from gateway.routing import fixedTopic

__all__ = ["checkKafka", "checkPaths", "main", "runCheck", "runTacCheck", "script", "walkServices"]

#: Seconds each Kafka request of C{--check-kafka} may take.
KAFKA_TIMEOUT = 10.0


def runCheck(
    settings, kafka=False, out=None, timeout=KAFKA_TIMEOUT, admin=None, listeners=None, twistd=None
):
    """
    Check a gateway's settings (already parsed and checked by
    L{checkSettings<gateway.settings.checkSettings>}, which loaded its
    framings and backend, and left the paths to this check so that each is
    a line of its own) and print what was checked.

    :param settings: L{GatewaySettings<gateway.settings.GatewaySettings>}.
    :param kafka: also ask the cluster (L{checkKafka}).
    :param out: where to print (L{sys.stdout} by default).
    :param timeout: seconds each Kafka request may take.
    :param admin: builds the Kafka admin client from a configuration
        (confluent-kafka's C{AdminClient} by default).
    :param listeners: C{(framing, endpoint, route)} of each listener; those
        of C{settings} by default.
    :param twistd: twistd's own options, for its log file, or L{None}.
    :return: the exit status, 0 or 1.
    """
    out = sys.stdout if out is None else out
    if listeners is None:
        listeners = [(s.framing, s.endpoint, s.route) for s in settings.listeners]
    results = [(True, _describeOptions(settings, len(listeners)))]
    for framing, endpoint, _ in listeners:
        results.append((True, f"listener {framing}={endpoint}"))
    for error in settings.check.registry.errors:
        results.append((True, f"framing plugin not loaded (unused): {error}"))
    results.extend(checkPaths(settings, listeners, twistd))
    if kafka:
        results.extend(checkKafka(settings, timeout, admin, listeners))
    return _print(results, out)


def _describeOptions(settings, count):
    backend = getattr(settings.backend, "name", type(settings.backend).__name__)
    return (
        f"settings: topic {settings.topic!r}, {count} listener{'s' if count != 1 else ''}, "
        f"backend {backend}, bootstrap servers {settings.bootstrapServers}"
    )


def _print(results, out):
    failed = 0
    for ok, line in results:
        failed += not ok
        out.write(f"{'ok  ' if ok else 'FAIL'}  {line}\n")
    if failed:
        out.write(f"check failed: {failed} problem{'s' if failed != 1 else ''}\n")
    else:
        out.write("check passed\n")
    out.flush()
    return 1 if failed else 0


def checkPaths(settings, listeners, twistd=None):
    """
    Whether the gateway could write where it writes: the spool, the
    dead-letter file, the sockets of C{unix:} listeners and HTTP endpoint,
    and twistd's log file; each by L{gateway.paths}, as the start does.

    :param listeners: C{(framing, endpoint, route)} of each listener.
    :param twistd: twistd's own options, or L{None}.
    :return: a list of C{(ok, line)}.
    """
    paths = [
        (f"--spool {settings.spoolPath}", settings.spoolPath),
        (f"--dead-letter {settings.deadLetterPath}", settings.deadLetterPath),
    ]
    for framing, endpoint, _ in listeners:
        socket = unixSocketPath(endpoint)
        if socket is not None:
            paths.append((f"--listen {framing}={endpoint}", socket))
    if settings.http is not None and unixSocketPath(settings.http) is not None:
        paths.append((f"--http {settings.http}", unixSocketPath(settings.http)))
    logFile = logFilePath(twistd)
    if logFile is not None:
        paths.append((f"--logfile {logFile}", logFile))
    results = []
    for option, path in paths:
        if path is None:
            results.append((True, f"{option}: nothing to write"))
            continue
        problem = fileProblem(path)
        results.append((problem is None, f"{option}: {problem or 'writable'}"))
    return results


def checkKafka(settings, timeout=KAFKA_TIMEOUT, admin=None, listeners=None):
    """
    Ask the cluster, with the producer's own configuration (security
    included), whether it answers, and for each topic known at start (the
    fixed topic of each listener, C{--topic} for those naming none) whether
    it exists and whether this client may write to it. Nothing is produced
    and no topic is created (an admin client's metadata requests never
    create topics).

    :param listeners: C{(framing, endpoint, route)} of each listener; those
        of C{settings} by default.
    :return: a list of C{(ok, line)}; it stops when no broker answers.
    """
    from confluent_kafka import TopicCollection

    if admin is None:
        from confluent_kafka.admin import AdminClient as admin
    if listeners is None:
        listeners = [(s.framing, s.endpoint, s.route) for s in settings.listeners]
    silent = logging.getLogger("gateway.check.librdkafka")
    silent.addHandler(logging.NullHandler())
    silent.propagate = False
    config = dict(settings.config)
    config["logger"] = silent
    results = []
    try:
        client = admin(config)
        cluster = client.describe_cluster(request_timeout=timeout).result(timeout + 5)
    except Exception as e:
        reason = _kafkaReason(e)
        results.append((False, f"kafka {settings.bootstrapServers}: no answer ({reason})"))
        return results
    brokers = ", ".join(f"{node.host}:{node.port}" for node in cluster.nodes)
    results.append((True, f"kafka {settings.bootstrapServers}: brokers {brokers} answer"))
    topics = []
    for framing, endpoint, route in listeners:
        topic = fixedTopic(route, settings.topic)
        if topic is None:
            results.append(
                (True, f"listener {framing}={endpoint}: topic chosen per connection, not checked")
            )
        elif topic not in topics:
            topics.append(topic)
    if not topics:
        return results
    futures = client.describe_topics(
        TopicCollection(topics), request_timeout=timeout, include_authorized_operations=True
    )
    for topic in topics:
        results.extend(_checkTopic(topic, futures[topic], timeout))
    return results


def _checkTopic(name, future, timeout):
    """
    One topic's lines: it exists (and its partitions), this client may
    write to it.
    """
    from confluent_kafka.admin import AclOperation

    try:
        topic = future.result(timeout + 5)
    except Exception as e:
        return [(False, f"kafka topic {name!r}: {_kafkaReason(e)}")]
    results = [(True, f"kafka topic {name!r}: exists, {len(topic.partitions)} partition(s)")]
    allowed = topic.authorized_operations
    if allowed is None:
        results.append((True, f"kafka topic {name!r}: the broker did not say who may write"))
    elif AclOperation.WRITE in allowed or AclOperation.ALL in allowed:
        results.append((True, f"kafka topic {name!r}: this client may write"))
    else:
        results.append((False, f"kafka topic {name!r}: this client may not write to it"))
    return results


def _kafkaReason(error):
    kafka = error.args[0] if getattr(error, "args", None) else None
    if hasattr(kafka, "name") and hasattr(kafka, "str"):
        return f"{kafka.str()} ({kafka.name()})"
    return describe(error)


def runTacCheck(path, kafka=False, out=None, timeout=KAFKA_TIMEOUT, admin=None):
    """
    Check a C{.tac} file: run it (it builds its L{GatewayService}s, which
    check their settings), then check each gateway it built as L{runCheck}
    does.

    :return: the exit status, 0 or 1.
    """
    from twisted.application.service import IService, loadApplication

    from gateway.service import GatewayService

    out = sys.stdout if out is None else out
    try:
        application = loadApplication(path, "python")
    except Exception as e:
        return _print([(False, f"{path}: {describe(e)}")], out)
    gateways = [s for s in walkServices(IService(application)) if isinstance(s, GatewayService)]
    if not gateways:
        return _print([(False, f"{path}: builds no GatewayService")], out)
    status = 0
    for gateway in gateways:
        listeners = [
            (s.config.framing, s.config.endpoint, gateway.router.routes[s.config.name])
            for s in gateway.listeners
        ]
        status |= runCheck(gateway.settings, kafka, out, timeout, admin, listeners)
    return status


def walkServices(service):
    """
    C{service} and every service under it, parents first (the order they
    start in).
    """
    yield service
    for child in getattr(service, "services", ()):
        yield from walkServices(child)


def main(argv=None, out=None):
    """
    C{gateway-check [--check-kafka] FILE.tac}: L{runTacCheck} as a command
    (for the command line's options, C{twistd gateway --check ...}).

    :return: the exit status.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    kafka = "--check-kafka" in argv
    files = [arg for arg in argv if arg != "--check-kafka"]
    if len(files) != 1 or files[0].startswith("-"):
        report("usage: gateway-check [--check-kafka] FILE.tac", sys.stderr)
        return 1
    try:
        return runTacCheck(files[0], kafka, out)
    except StartupError as e:
        report(e, sys.stderr)
        return 1


def script():
    """
    The C{gateway-check} console script: L{main}'s status is the exit status.
    """
    raise SystemExit(main())
