# -*- test-case-name: tests.client.test_send -*-
"""
A fake gateway listener in ack mode for the client's tests, on a real
loopback socket in a thread of its own: the C{lines} framing, the
C{SESSION} handshake, and C{ACK}/C{NACK} exactly as the gateway's ack mode
writes them, with switches for the failures a client must survive.
"""

import socketserver
import threading


class AckServer(socketserver.ThreadingTCPServer):
    """
    Acknowledge every line as soon as it is read.

    :ivar records: C{(session, seq, payload)} of every message read, on
        every connection, in order.
    :ivar handshakes: the first line of each connection.
    :ivar dropAfter: on the first connection only, read this many messages,
        acknowledge all but the last three, and close.
    :ivar silent: never acknowledge.
    :ivar refusePrefix: refuse (C{NACK <seq> too-large}) messages starting
        with it.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, dropAfter=None, silent=False, refusePrefix=b"refuse"):
        socketserver.ThreadingTCPServer.__init__(self, ("127.0.0.1", 0), _Handler)
        self.records = []
        self.handshakes = []
        self.dropAfter = dropAfter
        self.silent = silent
        self.refusePrefix = refusePrefix
        self._lock = threading.Lock()

    @property
    def address(self):
        host, port = self.server_address
        return f"{host}:{port}"

    def start(self):
        thread = threading.Thread(target=self.serve_forever, daemon=True)
        thread.start()
        return self

    def stop(self):
        self.shutdown()
        self.server_close()


class _Handler(socketserver.StreamRequestHandler):
    def handle(self):
        server = self.server
        handshake = self.rfile.readline()
        with server._lock:
            server.handshakes.append(handshake)
            first = len(server.handshakes) == 1
        word, session, firstSeq = handshake.split()
        assert word == b"SESSION", handshake
        session, seq = session.decode(), int(firstSeq) - 1
        read = 0
        for line in self.rfile:
            seq += 1
            read += 1
            payload = line.rstrip(b"\n")
            with server._lock:
                server.records.append((session, seq, payload))
            if server.silent:
                continue
            if first and server.dropAfter and read > server.dropAfter - 3:
                if read == server.dropAfter:
                    return
                continue
            if payload.startswith(server.refusePrefix):
                self.wfile.write(b"NACK %d too-large\n" % seq)
            self.wfile.write(b"ACK %d\n" % seq)
