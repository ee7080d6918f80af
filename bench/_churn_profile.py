"""
Run C{twistd} under cProfile counting the reactor thread's CPU time
(C{time.thread_time}), not wall time: on a shared machine a wall-clock
profile charges the gateway for the time it waits for a core.

Usage: C{python bench/_churn_profile.py STATS twistd-arguments...}; the
statistics are written when the reactor shuts down.
"""

import cProfile
import sys
import time


def main():
    path = sys.argv[1]
    sys.argv = ["twistd", *sys.argv[2:]]
    from twisted.internet import reactor
    from twisted.scripts.twistd import run

    profile = cProfile.Profile(time.thread_time)

    def dump():
        profile.disable()
        profile.dump_stats(path)

    reactor.addSystemEventTrigger("after", "shutdown", dump)
    profile.enable()
    run()


if __name__ == "__main__":
    main()
