# -*- test-case-name: tests.test_errors -*-
"""
How a start-up failure reaches the operator: one line on standard error and
exit status 1, never a traceback, unless C{GATEWAY_DEBUG=1} asks for one.

twistd itself prints a usage error with the whole help on standard output,
and anything raised while it starts services as a traceback into the log.
A gateway that cannot start should say why in one line the operator (or
systemd's journal) sees, so the command line and L{makeService
<gateway.tap.makeService>} route every failure through L{StartupError}.
"""

import os
import sys
from contextlib import contextmanager

from twisted.application.service import MultiService
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

__all__ = [
    "DEBUG_ENV",
    "PREFIX",
    "StartupError",
    "StartupGuard",
    "debugRequested",
    "describe",
    "installHook",
    "oneLine",
    "report",
]

#: The environment variable that keeps tracebacks (C{GATEWAY_DEBUG=1}).
DEBUG_ENV = "GATEWAY_DEBUG"

#: What every one-line error starts with.
PREFIX = "gateway: "


class StartupError(Exception):
    """
    The gateway cannot start; C{str()} is the one line that says why.
    """


def debugRequested(environ=None):
    """
    :param environ: the environment (L{os.environ} by default).
    :return: whether C{GATEWAY_DEBUG} asks for tracebacks (any value but
        empty, C{0}, C{no}, C{false}).
    """
    environ = os.environ if environ is None else environ
    return environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "no", "false")


def describe(exception):
    """
    One line for an exception raised while starting.

    :param exception: a L{BaseException}.
    :return: its reason without the Python details: for a port that cannot
        be bound, the address and the system's reason; for other system
        errors, the reason and the file; otherwise its message.
    """
    if isinstance(exception, CannotListenError):
        port = exception.port
        if isinstance(port, bytes):
            port = port.decode("utf-8", "replace")
        address = port if isinstance(port, str) else f"{exception.interface or '*'}:{port}"
        return f"cannot listen on {address}: {_reason(exception.socketError)}"
    if isinstance(exception, OSError) and exception.strerror:
        # A symlink or rename names its target second (a unix: endpoint's
        # lock file is a symlink whose first name is the process id).
        path = exception.filename2 or exception.filename
        where = f": {os.fsdecode(path)}" if path else ""
        return f"{_reason(exception)}{where}"
    text = str(exception).strip() or type(exception).__name__
    return " ".join(text.split())


def _reason(error):
    if isinstance(error, OSError) and error.strerror:
        return error.strerror[:1].lower() + error.strerror[1:]
    return " ".join(str(error).split())


def report(message, stream=None):
    """
    Write one error line.

    :param message: the line, without L{PREFIX}.
    :param stream: where (the process's original standard error by default:
        twistd sends L{sys.stderr} into the log once logging starts).
    """
    stream = (sys.__stderr__ or sys.stderr) if stream is None else stream
    stream.write(PREFIX + " ".join(str(message).split()) + "\n")
    stream.flush()


def installHook(environ=None, stream=None):
    """
    Make an exception that reaches the top of the process end it with one
    line (and exit status 1, as any uncaught exception), not a traceback:
    a L{StartupError}'s own line, or for anything else (a log file twistd
    could not open, a bug) L{describe}'s with a pointer to
    C{GATEWAY_DEBUG}. C{KeyboardInterrupt} and the like are left to the hook
    already installed. Nothing is installed when L{debugRequested}.

    Only start-up and shutdown failures get this far: once the reactor runs,
    it logs what its callbacks raise. twistd lets an exception raised while
    starting services reach the top after writing it to a daemon's parent
    (which then prints it): this hook is for the foreground (C{twistd -n}).
    """
    if debugRequested(environ) or getattr(sys.excepthook, "gatewayHook", False):
        return
    previous = sys.excepthook

    def hook(kind, value, traceback):
        if isinstance(value, StartupError):
            report(str(value), stream)
        elif isinstance(value, Exception):
            report(f"{describe(value)} ({DEBUG_ENV}=1 shows the traceback)", stream)
        else:
            previous(kind, value, traceback)

    hook.gatewayHook = True
    sys.excepthook = hook


@contextmanager
def oneLine(environ=None, stream=None):
    """
    Within the block, an exception ends the process with its one line
    (L{describe}) on standard error and exit status 1: for what a C{.tac}
    file builds, which twistd would otherwise answer with a traceback and
    C{Failed to load application}. Nothing changes when L{debugRequested}.
    """
    try:
        yield
    except Exception as e:
        if debugRequested(environ):
            raise
        report(describe(e), stream)
        raise SystemExit(1) from None


class StartupGuard(MultiService):
    """
    The root of the command line's service tree: starts its children and
    turns what they raise into a L{StartupError}, logged and one line long.

    :ivar explain: called with the exception; returns the line, naming the
        option at fault where it can.
    """

    log = Logger()

    def __init__(self, explain=describe, environ=None):
        """
        :param explain: see L{explain}.
        :param environ: the environment, for L{debugRequested}.
        """
        MultiService.__init__(self)
        self.explain = explain
        self.environ = environ

    def privilegedStartService(self):
        """
        Bind the children's ports, or fail in one line.
        """
        self._guard(MultiService.privilegedStartService)

    def startService(self):
        """
        Start the children, or fail in one line.
        """
        self._guard(MultiService.startService)

    def _guard(self, start):
        try:
            start(self)
        except StartupError:
            raise
        except Exception as e:
            if debugRequested(self.environ):
                raise
            message = self.explain(e)
            self.log.critical("gateway not started: {reason}", reason=message)
            raise StartupError(message) from None
