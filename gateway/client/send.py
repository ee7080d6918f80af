# -*- test-case-name: tests.client.test_send -*-
"""
C{gateway-send}: send lines to a gateway listener in ack mode and say how
many Kafka confirmed.  A fresh machine has no C{nc}; this needs only the
gateway's own install, and unlike C{nc} it knows when the data is in Kafka.
"""

import argparse
import sys

from gateway.client.blocking import BlockingClient, ConnectFailed
from gateway.client.framing import ClientFraming
from gateway.framing.options import OptionError

__all__ = ["main", "parser"]

#: Exit status: every message confirmed.
CONFIRMED = 0
#: Exit status: some message not confirmed, or no connection.
NOT_CONFIRMED = 1


def parser():
    """
    :return: the command line's L{argparse.ArgumentParser}.
    """
    p = argparse.ArgumentParser(
        prog="gateway-send",
        description=(
            "Send each line of the files (or of stdin) as one message to a gateway "
            "listener in ack mode, wait until Kafka confirmed every one, and say how "
            "many were. Empty lines are skipped. Exit status 0 when all were "
            "confirmed, 1 otherwise."
        ),
    )
    p.add_argument("address", metavar="HOST:PORT", help="the listener (or an endpoint, tcp:...)")
    p.add_argument("files", metavar="FILE", nargs="*", help="files to read ('-' or none: stdin)")
    p.add_argument(
        "-f",
        "--framing",
        default="lines",
        help="the listener's framing with its options, as in --listen: "
        "lines, 'lines(delimiter=\\r\\n)', length-prefixed, netstring, "
        "octet-counting, varint (default: lines)",
    )
    p.add_argument("-s", "--session", help="the session id (default: a random one)")
    p.add_argument(
        "--first-seq",
        type=int,
        default=1,
        help="the number of the first message, to carry on a session (default: 1)",
    )
    p.add_argument(
        "--window",
        type=int,
        default=1000,
        help="messages sent and not yet acknowledged, at most (default: 1000)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds to wait for the connection, for room in the window and "
        "for the last acknowledgements (default: 30)",
    )
    return p


def _lines(paths, stdin):
    for path in paths or ["-"]:
        if path == "-":
            stream, close = stdin, False
        else:
            stream, close = open(path, "rb"), True
        try:
            for line in stream:
                line = line.rstrip(b"\n")
                if line:
                    yield line
        finally:
            if close:
                stream.close()


def _plural(count, word):
    return f"{count} {word}" + ("" if count == 1 else "s")


def run(argv, stdin=None, stdout=None, stderr=None, connect=BlockingClient):
    """
    Send as the command line says.

    :param argv: the arguments, without the program name.
    :param stdin: a binary stream (C{sys.stdin.buffer} unless given).
    :param connect: builds the L{BlockingClient} (for tests).
    :return: the exit status, L{CONFIRMED} or L{NOT_CONFIRMED}.
    :raise SystemExit: 2 for a bad command line (argparse's own code).
    """
    stdin = sys.stdin.buffer if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    p = parser()
    arguments = p.parse_args(argv)
    try:
        framing = ClientFraming.fromSpec(arguments.framing)
        client = connect(
            arguments.address,
            framing,
            session=arguments.session,
            firstSeq=arguments.first_seq,
            maxUnacked=arguments.window,
            connectTimeout=arguments.timeout,
        )
    except (OptionError, ValueError) as e:
        p.error(str(e))
    except ConnectFailed as e:
        print(f"gateway-send: {e}", file=stderr, flush=True)
        return NOT_CONFIRMED
    try:
        with client:
            stalled = None
            for line in _lines(arguments.files, stdin):
                try:
                    client.send(line, timeout=arguments.timeout)
                except TimeoutError as e:
                    stalled = str(e)
                    break
                except ValueError as e:
                    p.error(f"cannot send {line[:40]!r} as {framing.name}: {e}")
            outcome = client.flush(timeout=arguments.timeout)
    except OSError as e:
        print(f"gateway-send: {e}", file=stderr, flush=True)
        return NOT_CONFIRMED
    session = client.session
    print(
        f"gateway-send: {_plural(outcome.confirmed, 'message')} confirmed "
        f"(session {session}, next seq {client.client.nextSeq})",
        file=stdout,
        flush=True,
    )
    missing = outcome.sent - outcome.confirmed
    if stalled is None and not missing:
        return CONFIRMED
    details = []
    if outcome.refused:
        reasons = ", ".join(f"{seq} {reason}" for seq, reason in outcome.refused[:5])
        more = ", ..." if len(outcome.refused) > 5 else ""
        details.append(f"{len(outcome.refused)} refused: {reasons}{more}")
    if outcome.unacknowledged:
        details.append(
            f"{outcome.unacknowledged} unacknowledged after {arguments.timeout:g} s; to resend "
            f"from message {client.client.firstUnacknowledged}: --session {session} "
            f"--first-seq {client.client.firstUnacknowledged}"
        )
    if stalled is not None:
        details.append(f"stopped reading the input: {stalled}")
    print(
        f"gateway-send: {missing} of {_plural(outcome.sent, 'message')} not confirmed ("
        + "; ".join(details)
        + ")",
        file=stderr,
        flush=True,
    )
    return NOT_CONFIRMED


def main(argv=None):
    """
    The C{gateway-send} console script.
    """
    sys.exit(run(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
