# -*- test-case-name: tests.compat.test_pykafka -*-
"""
Everything the pykafka backend relies on in pykafka beyond its public API,
in one place: a purge must empty a producer's per-broker queues, a dead
producer thread must be noticed without calling C{produce}, and closing must
close the broker connections, none of which pykafka offers.  Each entry was
checked against pykafka L{CHECKED}; C{tests/compat/test_pykafka.py} checks
each against the installed pykafka.

pykafka itself is not imported here (the backend imports it only when used).
"""

__all__ = ["CHECKED", "disconnectBroker", "dropQueued", "workerException"]

#: The pykafka version every entry below was checked against.
CHECKED = "2.8.0"


def dropQueued(producer):
    """
    Forget the records an asynchronous pykafka producer holds and has not
    sent yet: its private C{_owned_brokers} (broker id to C{OwnedBroker},
    L{None} before C{start}), each with a C{lock}, a C{queue} (a
    C{deque}) and C{increment_messages_pending}.

    :return: how many records were dropped.
    """
    dropped = 0
    for owned in list((producer._owned_brokers or {}).values()):
        with owned.lock:
            count = len(owned.queue)
            owned.queue.clear()
            owned.increment_messages_pending(-count)
        dropped += count
    return dropped


def workerException(producer):
    """
    Why a producer's sending thread died (pykafka keeps C{sys.exc_info()} in
    its private C{_worker_exception} and raises it only from the next
    C{produce}).

    :return: an C{(type, value, traceback)} tuple, or L{None} while the
        threads live (or when the attribute is gone).
    """
    return getattr(producer, "_worker_exception", None)


def disconnectBroker(broker):
    """
    Stop a pykafka C{Broker}'s request-handler thread (its private
    C{_req_handler}, public as C{handler}) and close its socket (its private
    C{_connection}'s C{disconnect}); pykafka's client has no C{close}.
    """
    broker._req_handler.stop()
    broker._connection.disconnect()
