"""
Tests for L{gateway.server.descriptors}: raising the descriptor limit, and the
guard that stops the listeners accepting before client connections eat
into the reserve or when C{accept} runs out of descriptors.
"""

import errno
import gc
import os
import resource
import shutil
import tempfile

from twisted.internet import tcp
from twisted.internet.task import Clock
from twisted.logger import Logger, LogPublisher, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from gateway.server import descriptors
from gateway.server.descriptors import (
    ACCEPT_ERROR,
    DESCRIPTORS,
    RECOUNT_INTERVAL,
    DescriptorGuard,
    openDescriptors,
    raiseDescriptorLimit,
)
from tests.support.listeners import RecordingListener
from tests.support.logs import captureLogs, eventsFrom

NOFILE = resource.RLIMIT_NOFILE
INFINITY = resource.RLIM_INFINITY


def descriptorLogs(testCase):
    """
    :return: a function of a level name giving the events
        L{gateway.server.descriptors} logged at that level during the test.
    """
    events = captureLogs(testCase)
    return lambda level: eventsFrom(events, "gateway.server.descriptors", level)


class FakeLimits:
    """
    C{getrlimit} and C{setrlimit} on a recorded pair of limits.

    :ivar calls: C{(function, resource, limits)} in call order.
    :ivar error: raised by C{setrlimit} when set.
    """

    def __init__(self, soft, hard, error=None):
        self.limits = (soft, hard)
        self.error = error
        self.calls = []

    def getrlimit(self, which):
        self.calls.append(("get", which, None))
        return self.limits

    def setrlimit(self, which, limits):
        self.calls.append(("set", which, limits))
        if self.error is not None:
            raise self.error
        self.limits = limits


class RaiseDescriptorLimitTests(SynchronousTestCase):
    """
    L{raiseDescriptorLimit}.
    """

    def setUp(self):
        self.logs = descriptorLogs(self)

    def raiseWith(self, limits):
        return raiseDescriptorLimit(limits.getrlimit, limits.setrlimit)

    def test_raisesSoftToHard(self):
        """
        A soft limit under the hard one is raised to it; the log line says
        from what.
        """
        limits = FakeLimits(1024, 524288)
        self.assertEqual(self.raiseWith(limits), (1024, 524288, 524288))
        self.assertEqual(limits.calls, [("get", NOFILE, None), ("set", NOFILE, (524288, 524288))])
        [line] = self.logs("info")
        self.assertEqual((line["soft"], line["hard"], line["before"]), (524288, "524288", 1024))
        self.assertIn("1024", line["raised"])

    def test_alreadyAtHard(self):
        """
        A soft limit equal to the hard one is left alone.
        """
        limits = FakeLimits(4096, 4096)
        self.assertEqual(self.raiseWith(limits), (4096, 4096, 4096))
        self.assertEqual([c[0] for c in limits.calls], ["get"])
        [line] = self.logs("info")
        self.assertEqual(line["raised"], "")

    def test_unlimitedHardKeepsSoft(self):
        """
        An unlimited hard limit cannot be a soft one: the soft limit is
        kept, and the hard one is logged as unlimited.
        """
        limits = FakeLimits(1024, INFINITY)
        self.assertEqual(self.raiseWith(limits), (1024, 1024, INFINITY))
        self.assertEqual([c[0] for c in limits.calls], ["get"])
        [line] = self.logs("info")
        self.assertEqual(line["hard"], "unlimited")

    def test_setrlimitFailureLogged(self):
        """
        When the limit cannot be raised, a warning says so and the soft
        limit is returned unchanged, for L{OSError} and L{ValueError} alike.
        """
        for error in (
            OSError(errno.EPERM, "Operation not permitted"),
            ValueError("not allowed to raise maximum limit"),
        ):
            limits = FakeLimits(1024, 4096, error=error)
            self.assertEqual(self.raiseWith(limits), (1024, 1024, 4096))
            self.assertEqual(limits.calls[-1], ("set", NOFILE, (4096, 4096)))
            warning = self.logs("warn")[-1]
            self.assertEqual(
                (warning["soft"], warning["hard"], warning["error"]), (1024, 4096, error)
            )
        self.assertEqual(len(self.logs("warn")), 2)

    def test_defaultsAreTheProcessLimits(self):
        """
        Without arguments the process's own limits are read (and, where the
        soft limit is already the hard one, nothing changes).
        """
        soft, hard = resource.getrlimit(NOFILE)
        if soft != hard and hard != INFINITY:
            self.skipTest("would change this process's descriptor limit")
        self.assertEqual(raiseDescriptorLimit(), (soft, soft, hard))

    def test_linesText(self):
        """
        The limit line gives the soft and hard limits and, when raised, from
        what; a failure to raise says from what to what and why.
        """
        self.raiseWith(FakeLimits(1024, 524288))
        self.raiseWith(FakeLimits(1024, INFINITY))
        self.raiseWith(FakeLimits(1024, 4096, error=ValueError("not allowed")))
        self.assertEqual(
            [formatEvent(e) for e in self.logs("info")],
            [
                "descriptor limit (RLIMIT_NOFILE): soft 524288, hard 524288 (raised from 1024)",
                "descriptor limit (RLIMIT_NOFILE): soft 1024, hard unlimited",
                "descriptor limit (RLIMIT_NOFILE): soft 1024, hard 4096",
            ],
        )
        self.assertEqual(
            [formatEvent(e) for e in self.logs("warn")],
            ["could not raise the descriptor limit from 1024 to 4096: not allowed"],
        )


class OpenDescriptorsTests(SynchronousTestCase):
    """
    L{openDescriptors}.
    """

    def temporaryDirectory(self):
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        return directory

    def test_countsDirectoryEntries(self):
        """
        The count is the number of entries of the descriptor directory.
        """
        directory = self.temporaryDirectory()
        for name in ("0", "1", "7"):
            open(os.path.join(directory, name), "w").close()
        self.assertEqual(openDescriptors(directory), 3)

    def test_noProc(self):
        """
        Without the directory the count is unknown: L{None}.
        """
        missing = os.path.join(self.temporaryDirectory(), "fd")
        self.assertIsNone(openDescriptors(missing))

    def test_thisProcess(self):
        """
        By default this process's descriptors are counted, which includes
        one more once a file is opened.
        """
        gc.collect()
        before = openDescriptors()
        with open(__file__):
            self.assertEqual(openDescriptors(), before + 1)


class DescriptorGuardTests(SynchronousTestCase):
    """
    L{DescriptorGuard}.
    """

    def setUp(self):
        self.clock = Clock()
        self.listeners = [RecordingListener(), RecordingListener()]
        self.publisher = LogPublisher()
        self.logs = descriptorLogs(self)

    def guard(self, reserve=10, limit=200, inUse=20):
        """
        :return: a started guard; with the defaults, room for 170 clients.
        """
        guard = DescriptorGuard(
            self.listeners, self.clock, reserve=reserve, publisher=self.publisher
        )
        guard.start(limit=limit, inUse=inUse)
        self.addCleanup(guard.stop)
        return guard

    def calls(self):
        [first, second] = self.listeners
        self.assertEqual(first.calls, second.calls)
        return first.calls

    def acceptError(self, error=None, text=None):
        """
        Log a failed C{accept} as Twisted's TCP port does.
        """
        logger = Logger(namespace="twisted.internet.tcp", observer=self.publisher)
        if text is not None:
            logger.info(text)
        else:
            logger.info("Could not accept new connection ({acceptError})", acceptError=error)

    def test_capacity(self):
        """
        The capacity is the limit less the descriptors in use at start and
        the reserve, and at least one.
        """
        self.assertEqual(self.guard(reserve=10).capacity, 170)
        self.assertEqual(self.guard(reserve=64).capacity, 116)
        self.assertEqual(self.guard(reserve=64, limit=50).capacity, 1)
        self.assertEqual(self.guard(reserve=64, limit=INFINITY).capacity, None)

    def test_readsLimitsWhenNotGiven(self):
        """
        Started without figures, the guard reads the soft limit and the
        descriptors open now.
        """
        guard = DescriptorGuard([], self.clock, reserve=3, publisher=self.publisher)
        guard.start()
        self.addCleanup(guard.stop)
        soft = resource.getrlimit(NOFILE)[0]
        self.assertEqual(guard.limit, soft)
        if soft != INFINITY:
            self.assertEqual(guard.capacity, max(soft - openDescriptors() - 3, 1))

    def test_pausesAtCapacity(self):
        """
        The connection that fills the capacity stops every listener
        accepting, once, for C{descriptors}.
        """
        guard = self.guard()
        for _ in range(169):
            guard.opened()
        self.assertEqual((self.calls(), guard.full), ([], False))
        guard.opened()
        self.assertEqual((self.calls(), guard.full), ([("pause", DESCRIPTORS)], True))
        guard.opened()
        self.assertEqual(self.calls(), [("pause", DESCRIPTORS)])
        self.assertEqual(guard.open, 171)

    def test_resumesBelowCapacity(self):
        """
        Listeners accept again once a close brings the connections under
        the capacity, and stop again when it is reached again.
        """
        guard = self.guard()
        for _ in range(171):
            guard.opened()
        guard.closed()
        self.assertEqual(self.calls(), [("pause", DESCRIPTORS)])
        guard.closed()
        self.assertEqual(self.calls(), [("pause", DESCRIPTORS), ("resume", DESCRIPTORS)])
        self.assertEqual((guard.open, guard.full), (169, False))
        guard.closed()
        guard.opened()
        guard.opened()
        self.assertEqual(self.calls()[-1], ("pause", DESCRIPTORS))
        self.assertEqual(len(self.calls()), 3)

    def test_room(self):
        """
        The room is the client connections that still fit, every listener
        together, never below zero; L{None} without a limit.
        """
        guard = self.guard()
        self.assertEqual(guard.room, 170)
        for _ in range(169):
            guard.opened()
        self.assertEqual(guard.room, 1)
        guard.opened()
        guard.opened()
        self.assertEqual(guard.room, 0)
        guard.closed()
        guard.closed()
        self.assertEqual(guard.room, 1)
        self.assertIsNone(self.guard(limit=INFINITY).room)

    def test_stopAccepting(self):
        """
        L{DescriptorGuard.stopAccepting} (a listener found no room) stops
        every listener for C{descriptors} once, and the next close below
        the capacity resumes them.
        """
        guard = self.guard(limit=12, inUse=0)
        guard.opened()
        guard.opened()
        guard.capacity = 2  # a recount found fewer descriptors free
        guard.stopAccepting()
        guard.stopAccepting()
        self.assertEqual((self.calls(), guard.full), ([("pause", DESCRIPTORS)], True))
        guard.closed()
        self.assertEqual(self.calls(), [("pause", DESCRIPTORS), ("resume", DESCRIPTORS)])

    def test_unlimited(self):
        """
        With no descriptor limit, nothing ever pauses.
        """
        guard = self.guard(limit=INFINITY)
        for _ in range(5000):
            guard.opened()
        guard.closed()
        self.assertEqual(self.calls(), [])

    def test_listenersAddedLater(self):
        """
        Listeners added to the list after the guard was made are paused
        too (the gateway adds them as they are configured).
        """
        listeners = []
        guard = DescriptorGuard(listeners, self.clock, reserve=0, publisher=self.publisher)
        late = RecordingListener()
        listeners.append(late)
        guard.start(limit=1, inUse=0)
        self.addCleanup(guard.stop)
        guard.opened()
        self.assertEqual(late.calls, [("pause", DESCRIPTORS)])

    def test_reserveWarningOncePerInterval(self):
        """
        Reaching the reserve is a warning, at most once per interval, which
        counts the times it was reached since the last one.
        """
        guard = self.guard(reserve=0, limit=3, inUse=0)
        for _ in range(3):
            guard.opened()
        for _ in range(2):
            guard.closed()
            guard.opened()
        [warning] = self.logs("warn")
        self.assertEqual((warning["open"], warning["limit"], warning["times"]), (3, 3, 1))
        self.clock.advance(10)
        guard.closed()
        guard.opened()
        self.assertEqual(self.logs("warn")[-1]["times"], 3)
        self.assertEqual(self.calls().count(("pause", DESCRIPTORS)), 4)

    def test_emfileEncountered(self):
        """
        Twisted's C{EMFILE encountered} line (this process is at its limit;
        Twisted closed what it could not accept) lowers the room for clients
        to those open less the reserve and stops accepting for
        C{descriptors}, so later clients wait in the backlog; a client
        closing below the new room lets them in again.
        """
        guard = self.guard(reserve=10)
        for _ in range(100):
            guard.opened()
        self.acceptError(text="EMFILE encountered; releasing reserved file descriptor.")
        self.assertEqual((guard.capacity, guard.full, guard.acceptErrors), (90, True, 1))
        self.assertEqual(self.calls(), [("pause", DESCRIPTORS)])
        for _ in range(10):
            guard.closed()
        self.assertEqual(self.calls(), [("pause", DESCRIPTORS)])
        guard.closed()
        self.assertEqual(self.calls(), [("pause", DESCRIPTORS), ("resume", DESCRIPTORS)])
        # Resuming, the listeners accept no more at once than there is room.
        self.assertEqual(guard.room, 1)
        [warning] = [w for w in self.logs("warn") if "error" in w]
        self.assertEqual((warning["error"], warning["open"]), ("EMFILE", 100))
        self.assertIn("room lowered to 90", warning["then"])

    def test_outOfResources(self):
        """
        C{Could not accept new connection} for a lack of descriptors or
        memory pauses accepting for a second.
        """
        guard = self.guard()
        for error in ("EMFILE", "ENFILE", "ENOBUFS", "ENOMEM"):
            del self.listeners[0].calls[:], self.listeners[1].calls[:]
            self.acceptError(error)
            self.assertEqual(self.calls(), [("pause", ACCEPT_ERROR)], error)
            self.clock.advance(1)
            self.assertEqual(self.calls()[-1], ("resume", ACCEPT_ERROR), error)
        self.assertEqual(guard.acceptErrors, 4)

    def test_otherEventsIgnored(self):
        """
        A client giving up (C{ECONNABORTED}), Twisted's other EMFILE lines
        and unrelated events change nothing.
        """
        guard = self.guard()
        self.acceptError("ECONNABORTED")
        self.acceptError(text="EMFILE recovery: Closed socket from {address}")
        self.acceptError(text="Re-reserving EMFILE recovery file descriptor.")
        self.publisher({"message": ("EMFILE encountered",)})
        self.assertEqual((self.calls(), guard.acceptErrors), ([], 0))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.logs("warn"), [])

    def test_oneRetryAtATime(self):
        """
        Errors while accepting is paused do not put the retry off: accepting
        starts again one second after the first.
        """
        self.guard()
        self.acceptError("EMFILE")
        self.clock.advance(0.5)
        self.acceptError("ENFILE")
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(0.5)
        self.assertEqual(self.calls()[-1], ("resume", ACCEPT_ERROR))
        self.assertEqual(self.calls().count(("resume", ACCEPT_ERROR)), 1)

    def test_acceptWarningOncePerInterval(self):
        """
        Accept errors are a warning at most once per interval, naming the
        error and counting those since the last one.
        """
        self.guard()
        self.acceptError("ENFILE")
        self.clock.advance(2)
        self.acceptError("EMFILE")
        self.acceptError("EMFILE")
        [warning] = self.logs("warn")
        self.assertEqual((warning["error"], warning["times"]), ("ENFILE", 1))
        self.clock.advance(8)
        self.acceptError("ENOMEM")
        self.assertEqual(
            [(w["error"], w["times"]) for w in self.logs("warn")], [("ENFILE", 1), ("ENOMEM", 3)]
        )

    def test_twistedAcceptFailures(self):
        """
        The lines Twisted's TCP port really logs when C{accept} fails are
        recognised: C{ENFILE}, and C{EMFILE} with no reserved descriptor,
        pause accepting for a second; C{EMFILE} releasing its reserved
        descriptor lowers the room; C{ECONNABORTED} does nothing.
        """

        class Listening:
            def __init__(self, *errors):
                self.errors = list(errors)

            def accept(self):
                raise OSError(self.errors.pop(0), "accept failed")

        class Reservation:
            def available(self):
                return True

            def __enter__(self):
                pass

            def __exit__(self, *exc):
                pass

        guard = self.guard(reserve=10)
        for _ in range(50):
            guard.opened()
        logger = Logger(namespace="twisted.internet.tcp", observer=self.publisher)
        null = tcp._NullFileDescriptorReservation()
        for listening, reservation, counted in [
            (Listening(errno.ECONNABORTED), null, False),
            (Listening(errno.ENFILE), null, True),
            (Listening(errno.EMFILE), null, True),
            (Listening(errno.EMFILE, errno.EAGAIN), Reservation(), True),
        ]:
            before = guard.acceptErrors
            self.assertEqual(list(tcp._accept(logger, range(5), listening, reservation)), [])
            self.assertEqual(guard.acceptErrors - before, int(counted))
        self.assertEqual(self.calls(), [("pause", ACCEPT_ERROR)] * 2 + [("pause", DESCRIPTORS)])
        self.assertEqual(guard.capacity, 40)

    def test_watchesTheGlobalPublisher(self):
        """
        By default the guard watches the global log publisher, where
        Twisted's ports log.
        """
        listener = RecordingListener()
        guard = DescriptorGuard([listener], self.clock)
        guard.start(limit=100, inUse=0)
        self.addCleanup(guard.stop)
        Logger(namespace="twisted.internet.tcp").info(
            "Could not accept new connection ({acceptError})", acceptError="ENFILE"
        )
        self.assertEqual(listener.calls, [("pause", ACCEPT_ERROR)])

    def test_stop(self):
        """
        L{DescriptorGuard.stop} stops watching and cancels a pending retry.
        """
        guard = self.guard()
        self.acceptError("EMFILE")
        guard.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.acceptError("EMFILE")
        self.assertEqual((self.calls(), guard.acceptErrors), ([("pause", ACCEPT_ERROR)], 1))
        self.clock.advance(5)
        self.assertEqual(len(self.calls()), 1)
        guard.stop()

    def test_everyAcceptErrorReported(self):
        """
        Every accept error is counted in some warning's C{times} once a
        later accept-error warning is logged, even when a reserve warning
        came in between.
        """
        guard = self.guard(reserve=0, limit=1, inUse=0)
        self.acceptError("ENFILE")
        self.clock.advance(5)
        self.acceptError("ENFILE")
        self.clock.advance(5)
        guard.opened()
        self.clock.advance(10)
        self.acceptError("ENFILE")
        accepts = [w for w in self.logs("warn") if "error" in w]
        self.assertEqual(len(accepts), 2)
        self.assertEqual(sum(w["times"] for w in accepts), guard.acceptErrors)

    def test_recountRestoresRoom(self):
        """
        After the limit was hit, descriptors in use are recounted every
        C{RECOUNT_INTERVAL} seconds until the room is back; when the other
        descriptors were given back, the room grows and accepting resumes.
        """
        guard = self.guard(reserve=10)
        for _ in range(100):
            guard.opened()
        inUse = [200]
        self.patch(descriptors, "openDescriptors", lambda: inUse[0])
        self.acceptError(text="EMFILE encountered; releasing reserved file descriptor.")
        self.assertEqual(guard.capacity, 90)
        self.clock.advance(RECOUNT_INTERVAL)
        # 100 clients and 100 others: still no room; recount again later.
        self.assertEqual((guard.capacity, guard.full), (90, True))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        inUse[0] = 130
        self.clock.advance(RECOUNT_INTERVAL)
        self.assertEqual((guard.capacity, guard.full), (160, False))
        self.assertEqual(self.calls(), [("pause", DESCRIPTORS), ("resume", DESCRIPTORS)])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_openedSaysWhetherItFits(self):
        """
        L{DescriptorGuard.opened} returns L{True} for every connection up to
        the one that fills the room, L{False} for one over it; always
        L{True} without a limit.
        """
        guard = self.guard(limit=32, inUse=0)
        self.assertEqual([guard.opened() for _ in range(24)], [True] * 22 + [False] * 2)
        unlimited = self.guard(limit=INFINITY)
        self.assertEqual([unlimited.opened() for _ in range(3)], [True] * 3)

    def test_startLogged(self):
        """
        The start line gives the room, the limit, the descriptors in use
        and the reserve; "unlimited" without a limit.
        """
        self.guard(reserve=10, limit=200, inUse=20)
        self.guard(reserve=64, limit=INFINITY, inUse=7)
        lines = [formatEvent(e) for e in self.logs("info")]
        self.assertEqual(
            lines,
            [
                "client connections: room for 170 (descriptor limit 200, 20 in use at start,"
                " 10 reserved)",
                "client connections: room for unlimited (descriptor limit unlimited, 7 in use"
                " at start, 64 reserved)",
            ],
        )

    def test_startWithoutProc(self):
        """
        Where the descriptors in use cannot be counted, none are assumed.
        """
        self.patch(descriptors, "openDescriptors", lambda: None)
        guard = DescriptorGuard([], self.clock, reserve=3, publisher=self.publisher)
        guard.start(limit=100)
        self.addCleanup(guard.stop)
        self.assertEqual(guard.capacity, 97)

    def test_reserveWarningText(self):
        """
        The reserve warning says how many clients are open, the limit and
        the reserve.
        """
        guard = self.guard(reserve=2, limit=5, inUse=0)
        for _ in range(3):
            guard.opened()
        [warning] = self.logs("warn")
        self.assertEqual(warning["reserve"], 2)
        self.assertEqual(
            formatEvent(warning),
            "descriptor reserve reached: 3 client connections (limit 5, 2 reserved); not"
            " accepting until connections close, new ones wait in the backlog (1 times since"
            " the last such line)",
        )

    def test_reserveWarningInterval(self):
        """
        By default the reserve warning is repeated 10 seconds after the
        last one, not sooner.
        """
        guard = self.guard(reserve=0, limit=1, inUse=0)
        guard.opened()
        for advance in (9.9, 0.1):
            self.clock.advance(advance)
            guard.closed()
            guard.opened()
        self.assertEqual([w["times"] for w in self.logs("warn")], [1, 2])

    def test_acceptWarningText(self):
        """
        The accept-error warning names the error, the clients open and what
        happens next.
        """
        self.guard()
        self.acceptError("ENFILE")
        [warning] = self.logs("warn")
        self.assertEqual(
            formatEvent(warning),
            "accept failed: out of descriptors (ENFILE) with 0 client connections; open"
            " connections keep working; accepting again in 1 s (1 times since the last such"
            " line)",
        )

    def test_emfileWarningText(self):
        """
        At the limit, the warning gives the lowered room.
        """
        guard = self.guard(reserve=10)
        for _ in range(30):
            guard.opened()
        self.acceptError(text="EMFILE encountered; releasing reserved file descriptor.")
        [warning] = [w for w in self.logs("warn") if "then" in w]
        self.assertEqual(
            warning["then"],
            "room lowered to 20 client connections; new ones wait in the backlog until"
            " connections close",
        )

    def test_emfileUnlimited(self):
        """
        Without a descriptor limit, C{EMFILE encountered} is only counted:
        the room stays unlimited, nothing pauses, nothing is recounted.
        """
        guard = self.guard(limit=INFINITY)
        guard.opened()
        self.acceptError(text="EMFILE encountered; releasing reserved file descriptor.")
        self.assertEqual((guard.capacity, guard.full, guard.acceptErrors), (None, False, 1))
        self.assertEqual((self.calls(), self.clock.getDelayedCalls()), ([], []))
        self.assertEqual(self.logs("warn"), [])

    def test_emfileLowersOnly(self):
        """
        C{EMFILE encountered} never raises the room (it keeps a lower one a
        recount found), lowers it to one at least, and does not stop the
        listeners again when they are stopped.
        """
        guard = self.guard(reserve=10)
        for _ in range(50):
            guard.opened()
        guard.capacity = 30
        guard.stopAccepting()
        self.acceptError(text="EMFILE encountered; releasing reserved file descriptor.")
        self.assertEqual((guard.capacity, self.calls()), (30, [("pause", DESCRIPTORS)]))
        few = self.guard(reserve=10)
        for _ in range(5):
            few.opened()
        self.acceptError(text="EMFILE encountered; releasing reserved file descriptor.")
        self.assertEqual(few.capacity, 1)

    def test_emfileAtRoomWithoutReserve(self):
        """
        Without a reserve, C{EMFILE encountered} lowers the room to the
        clients open, which fills it: accepting stops.
        """
        guard = self.guard(reserve=0)
        for _ in range(5):
            guard.opened()
        self.acceptError(text="EMFILE encountered; releasing reserved file descriptor.")
        self.assertEqual((guard.capacity, guard.full), (5, True))
        self.assertEqual(self.calls(), [("pause", DESCRIPTORS)])

    def test_oneRecountAtATime(self):
        """
        A second C{EMFILE encountered} while a recount waits schedules no
        other.
        """
        guard = self.guard(reserve=10)
        for _ in range(50):
            guard.opened()
        self.acceptError(text="EMFILE encountered; releasing reserved file descriptor.")
        self.clock.advance(5)
        self.acceptError(text="EMFILE encountered; releasing reserved file descriptor.")
        self.assertEqual([c.getTime() for c in self.clock.getDelayedCalls()], [RECOUNT_INTERVAL])

    def test_recountUnknown(self):
        """
        A recount that cannot count the descriptors in use changes nothing
        and schedules no other.
        """
        guard = self.guard(reserve=10)
        for _ in range(50):
            guard.opened()
        self.patch(descriptors, "openDescriptors", lambda: None)
        self.acceptError(text="EMFILE encountered; releasing reserved file descriptor.")
        self.clock.advance(RECOUNT_INTERVAL)
        self.assertEqual((guard.capacity, guard.full), (40, True))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_recountExactlyFull(self):
        """
        A recount giving room for exactly the clients open keeps accepting
        stopped and recounts again; one giving less than one keeps a room
        of one.  The new room is logged with the count it comes from.
        """
        guard = self.guard(reserve=10)
        for _ in range(50):
            guard.opened()
        inUse = [200]
        self.patch(descriptors, "openDescriptors", lambda: inUse[0])
        self.acceptError(text="EMFILE encountered; releasing reserved file descriptor.")
        self.assertEqual(guard.capacity, 40)
        inUse[0] = 190
        self.clock.advance(RECOUNT_INTERVAL)
        self.assertEqual((guard.capacity, guard.full), (50, True))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.assertEqual(
            formatEvent(self.logs("info")[-1]),
            "client connections: room now 50 (190 descriptors in use, 50 of them clients)",
        )
        inUse[0] = 300
        self.clock.advance(RECOUNT_INTERVAL)
        self.assertEqual((guard.capacity, guard.full), (1, True))

    def test_stopCancelsRecount(self):
        """
        L{DescriptorGuard.stop} cancels a pending recount too.
        """
        guard = self.guard(reserve=10)
        for _ in range(50):
            guard.opened()
        self.acceptError(text="EMFILE encountered; releasing reserved file descriptor.")
        self.acceptError("ENFILE")
        self.assertEqual(len(self.clock.getDelayedCalls()), 2)
        guard.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_readsSoftLimit(self):
        """
        Started without a limit, the guard reads the soft one, not the hard
        one.
        """
        self.patch(descriptors.resource, "getrlimit", lambda which: (100, 5000))
        guard = DescriptorGuard([], self.clock, reserve=10, publisher=self.publisher)
        guard.start(inUse=20)
        self.addCleanup(guard.stop)
        self.assertEqual((guard.limit, guard.capacity), (100, 70))

    def test_warningInterval(self):
        """
        The interval given is the one between warnings, of either kind.
        """
        guard = DescriptorGuard(
            self.listeners, self.clock, reserve=0, interval=2.0, publisher=self.publisher
        )
        guard.start(limit=1, inUse=0)
        self.addCleanup(guard.stop)
        guard.opened()
        self.acceptError("ENFILE")
        self.clock.advance(2.0)
        guard.closed()
        guard.opened()
        self.acceptError("ENFILE")
        self.assertEqual([w["times"] for w in self.logs("warn")], [1, 1, 1, 1])
