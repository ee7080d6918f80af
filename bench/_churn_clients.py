"""
The churning clients of C{bench/churn.py}: processes that each repeat
connect -> K messages -> close from one source address, as fast as the
kernel lets them, and a discarding server to show they are not the limit.

Plain blocking sockets in a tight loop: per connection the client's own
work is a handful of system calls, so a few processes open connections
faster than one gateway process accepts them (measured against
L{discardServer}, which does less per connection than any gateway).
"""

import errno
import os
import socket
import struct
import threading
import time
from collections import Counter

#: Linux: choose the source port at connect(), for the whole 4-tuple, not
#: at bind() (which would need a port free for every destination).
IP_BIND_ADDRESS_NO_PORT = 24
#: Linux >= 6.3: this socket's own ephemeral port range, narrowed inside
#: net.ipv4.ip_local_port_range (it cannot widen it).
IP_LOCAL_PORT_RANGE = 51

CLOSE_MODES = ("client", "reset", "gateway")


def message(process, connection, index, size):
    """
    One message: a unique id, padded with C{x} to C{size} bytes.
    """
    head = b"c%d-%d-%d " % (process, connection, index)
    return (head + b"x" * size)[: max(size, len(head) - 1)]


def parseMessage(value):
    """
    :return: C{(process, connection, index)} of a value L{message} made,
        or L{None}.
    """
    try:
        head = value.split(b" ", 1)[0]
        process, connection, index = head[1:].split(b"-")
        return int(process), int(connection), int(index)
    except ValueError:
        return None


def _newSocket(source, mode, portRange):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
    if portRange:
        low, high = portRange
        sock.setsockopt(socket.SOL_IP, IP_LOCAL_PORT_RANGE, low | (high << 16))
    if mode == "reset":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.bind((source, 0))
    return sock


def _churn(process, thread, threads, plan, go, result):
    """
    One thread's loop; connection numbers C{thread, thread + threads, ...}
    so every message id of the process is unique.
    """
    host, port = plan["host"], plan["port"]
    source, mode, size = plan["source"], plan["mode"], plan["size"]
    perConnection, portRange = plan["perConnection"], plan["portRange"]
    stopOnExhaustion = plan["stopOnExhaustion"]
    errors, firstError = Counter(), {}
    sent, uncertain = [], []
    n = thread
    go.wait()
    start = time.monotonic()
    deadline = start + plan["seconds"]
    while time.monotonic() < deadline and not result["stop"]:
        data = b"".join(message(process, n, i, size) + b"\n" for i in range(perConnection))
        try:
            sock = _newSocket(source, mode, portRange)
        except OSError as e:
            errors["socket/bind " + errno.errorcode.get(e.errno, str(e.errno))] += 1
            continue
        connected = False
        try:
            sock.connect((host, port))
            connected = True
            sock.sendall(data)
            if mode == "gateway":
                while sock.recv(4096):
                    pass
            sent.append(n)
            n += threads
        except OSError as e:
            name = errno.errorcode.get(e.errno, str(e.errno))
            errors[name] += 1
            firstError.setdefault(name, time.monotonic() - start)
            if connected:
                uncertain.append(n)
                n += threads
            elif e.errno == errno.EADDRNOTAVAIL and stopOnExhaustion:
                result["stop"] = True
        finally:
            sock.close()
    with result["lock"]:
        result["sent"].extend(sent)
        result["uncertain"].extend(uncertain)
        result["errors"].update(errors)
        for name, at in firstError.items():
            result["firstError"][name] = min(at, result["firstError"].get(name, at))
        result["seconds"] = max(result["seconds"], time.monotonic() - start)


def clientProcess(process, plan, ready, go, results):
    """
    A client process: C{plan["threads"]} threads churning from
    C{plan["source"]}; puts a summary on C{results}.
    """
    threads = plan["threads"]
    result = {
        "lock": threading.Lock(),
        "stop": False,
        "sent": [],
        "uncertain": [],
        "errors": Counter(),
        "firstError": {},
        "seconds": 0.0,
    }
    local = threading.Event()
    workers = [
        threading.Thread(target=_churn, args=(process, k, threads, plan, local, result))
        for k in range(threads)
    ]
    for w in workers:
        w.start()
    ready.set()
    go.wait()
    began = time.monotonic()
    local.set()
    for w in workers:
        w.join()
    results.put(
        {
            "process": process,
            "source": plan["source"],
            "sent": sorted(result["sent"]),
            "uncertain": result["uncertain"],
            "errors": dict(result["errors"]),
            "firstError": result["firstError"],
            "seconds": result["seconds"],
            "began": began,
            "cpu": sum(os.times()[:2]),
        }
    )


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
