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
    A server that accepts, reads until end of stream and closes, one
    connection after the other with blocking calls: the least any server
    does per connection (no framing, no Kafka, no event loop).  Listens on
    C{port} with C{SO_REUSEPORT}, so several of these processes share it.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(("0.0.0.0", port))
    listener.listen(1024)
    listener.settimeout(0.2)
    ready.set()
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        conn.settimeout(5)
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass
        conn.close()
    listener.close()
