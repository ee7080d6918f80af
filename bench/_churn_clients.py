"""
The discarding server of C{bench/churn.py}, to show its clients (from
L{tests.integration.support.churn}, shared with the CI churn test) are not
the limit: it does less per connection than any gateway.
"""

import socket

from tests.integration.support.churn import (
    CLOSE_MODES,
    clientProcess,
    parseMessage,
)

__all__ = ["CLOSE_MODES", "clientProcess", "discardServer", "parseMessage"]


def discardServer(port, ready, stop):
    """
    A server that accepts, reads until EOF and closes, in one thread per
    connection-less loop: the least any server does per connection
    (no framing, no Kafka).  Listens on C{port} with C{SO_REUSEPORT} so
    several of these share it.
    """
    import resource
    import selectors

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(("0.0.0.0", port))
    listener.listen(4096)
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    ready.set()
    while not stop.is_set():
        for key, _ in selector.select(0.2):
            if key.data is None:
                while True:
                    try:
                        conn, _ = listener.accept()
                    except BlockingIOError:
                        break
                    conn.setblocking(False)
                    selector.register(conn, selectors.EVENT_READ, True)
            else:
                conn = key.fileobj
                try:
                    data = conn.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    selector.unregister(conn)
                    conn.close()
    listener.close()
