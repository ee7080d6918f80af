# -*- test-case-name: tests.integration.test_devkafka -*-
"""
``python -m devkafka``: fetch, start, stop and inspect a local broker.

Progress goes to stderr and results to stdout (``start`` ends with the
bootstrap address alone on the last line), so scripts can capture them.
"""

import argparse
import sys

from ._broker import DevKafka
from ._consume import iterRecords
from ._fetch import VERSIONS, DevKafkaError, defaultHome, resolveVersion

__all__ = ["main"]

#: Exit code of ``status`` when the broker is not running (as LSB init scripts).
NOT_RUNNING = 3

_DEFAULT_PORT = 9092


def _say(line):
    print(f"devkafka: {line}", file=sys.stderr, flush=True)


def _broker(args):
    # A broker that ran before is handled with the version it ran with.
    broker = DevKafka(args.kafka or "4", home=args.home, name=args.name)
    saved = broker.savedVersion()
    if saved and saved != broker.version:
        return DevKafka(saved, home=args.home, name=args.name)
    return broker


def _fetch(args):
    broker = DevKafka(args.kafka or "4", home=args.home, name=args.name)
    print(broker.fetch(log=_say))
    return 0


def _start(args):
    broker = _broker(args)
    if broker.isRunning():
        _say(f"{broker.name!r} already running (pid {broker.pid}, kafka {broker.version})")
        if args.port not in (None, 0, broker.port):
            _say(f"note: it listens on {broker.port}, not on the --port {args.port} asked for")
        if args.kafka and resolveVersion(args.kafka) != broker.version:
            _say(f"note: it runs Kafka {broker.version}, not the {args.kafka} asked for")
    else:
        # Without --port a broker comes back where it was (clients keep their
        # bootstrap after a crash); a new one gets Kafka's usual 9092.
        # --port 0 asks for any free port.
        port = None if args.port == 0 else (args.port or broker.port or _DEFAULT_PORT)
        version = args.kafka or broker.savedVersion() or "4"
        broker = DevKafka(version, home=args.home, name=args.name, port=port, secured=args.secured)
    bootstrap = broker.start(timeout=args.timeout, log=_say)
    for listener, port in sorted(broker.securePorts.items()):
        _say(f"{listener} listener on 127.0.0.1:{port}")
    if broker.certificates is not None:
        _say(f"certificates in {broker.certificates.ca.parent}; users: {', '.join(broker.users)}")
    print(bootstrap, flush=True)
    return 0


def _stop(args):
    broker = _broker(args)
    if broker.stop(timeout=args.timeout, wipe=args.wipe):
        _say(f"stopped {broker.name!r} ({broker.bootstrap})")
    else:
        _say(f"{broker.name!r} was not running")
    if args.wipe:
        _say(f"deleted {broker.runDir}")
    return 0


def _status(args):
    broker = _broker(args)
    if broker.isRunning():
        print(
            f"running {broker.bootstrap} (name {broker.name}, pid {broker.pid}, "
            f"kafka {broker.version}, data {broker.runDir})"
        )
        return 0
    where = f" {broker.bootstrap}" if broker.bootstrap else ""
    print(f"stopped{where} (name {broker.name}, data {broker.runDir})")
    return NOT_RUNNING


def _text(data):
    if data is None:
        return "<null>"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return repr(data)
    if any(c < " " and c != "\t" for c in text):
        return repr(data)
    return text


def _consume(args):
    bootstrap = args.bootstrap_servers
    if bootstrap is None:
        bootstrap = _broker(args).bootstrap
        if bootstrap is None:
            raise DevKafkaError(f"no --bootstrap-servers, and broker {args.name!r} never ran")
    seen = 0
    records = iterRecords(bootstrap, args.topic, args.count, args.timeout, args.from_beginning)
    for record in records:
        seen += 1
        line = _text(record.value)
        if record.headers:
            line += "\t" + " ".join(f"{k}={_text(v)}" for k, v in record.headers)
        print(line, flush=True)
    if args.count is not None and seen < args.count:
        _say(f"read {seen} of {args.count} records from {args.topic!r} before the timeout")
        return 1
    return 0


def _parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--home",
        default=None,
        help=f"jar cache and run folders (default: $GATEWAY_DEVKAFKA_HOME or "
        f"./.devkafka, now {defaultHome()})",
    )
    common.add_argument(
        "--kafka",
        default=None,
        metavar="VERSION",
        help=f"Kafka version: {', '.join(f'{k} ({v})' for k, v in VERSIONS.items())} "
        "or a full 3.x/4.x version (default: the broker's, else 4)",
    )
    common.add_argument(
        "--name",
        default="default",
        help="broker name; brokers of different names run side by side (default: default)",
    )
    parser = argparse.ArgumentParser(
        prog="python -m devkafka",
        description="Run a local Apache Kafka broker (KRaft, loopback) for development.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fetch = commands.add_parser("fetch", parents=[common], help="only download the jars")
    fetch.set_defaults(run=_fetch)

    start = commands.add_parser(
        "start", parents=[common], help="start the broker, print its bootstrap address"
    )
    start.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"bootstrap port on 127.0.0.1 (default: the broker's last port, "
        f"else {_DEFAULT_PORT}; 0: any free port)",
    )
    start.add_argument(
        "--timeout",
        type=float,
        default=90.0,
        help="seconds to wait for the broker to answer (default: 90)",
    )
    start.add_argument(
        "--secured",
        action="store_true",
        help="also open SASL_PLAINTEXT, SSL (mutual TLS) and SASL_SSL listeners, "
        "user gateway / gateway-secret (when first formatted)",
    )
    start.set_defaults(run=_start)

    stop = commands.add_parser("stop", parents=[common], help="stop the broker")
    stop.add_argument("--wipe", action="store_true", help="also delete its data and logs")
    stop.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds before SIGTERM becomes SIGKILL (default: 30)",
    )
    stop.set_defaults(run=_stop)

    status = commands.add_parser(
        "status",
        parents=[common],
        help=f"print running/stopped and the bootstrap; exit {NOT_RUNNING} if stopped",
    )
    status.set_defaults(run=_status)

    consume = commands.add_parser(
        "consume", parents=[common], help="print records of a topic, one per line"
    )
    consume.add_argument(
        "--bootstrap-servers",
        default=None,
        help="default: the bootstrap of the broker named by --name",
    )
    consume.add_argument("--topic", required=True)
    consume.add_argument(
        "--count", type=int, default=None, help="stop after N records (exit 1 if fewer came)"
    )
    consume.add_argument(
        "--timeout", type=float, default=None, help="stop after S seconds (default: never)"
    )
    consume.add_argument(
        "--from-beginning",
        action="store_true",
        help="read from the earliest offset, not only new records",
    )
    consume.set_defaults(run=_consume)
    return parser


def main(argv=None):
    """
    Run one command.

    :param argv: the arguments (default: ``sys.argv[1:]``).
    :return: the process exit code.
    """
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except DevKafkaError as e:
        _say(str(e))
        return 1
    except KeyboardInterrupt:
        return 130
