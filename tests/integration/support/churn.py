# -*- test-case-name: tests.integration.test_churn_kafka -*-
"""
Clients that open a connection per message: processes that each repeat
connect -> K messages -> close from one source address in a tight loop of
blocking sockets, every message carrying a unique id
(C{c<process>-<connection>-<index>}), so a reader can tell that each
arrived exactly once.  Shared by C{tests/integration/test_churn_kafka.py}
and C{bench/churn.py}.
"""

import errno
import multiprocessing
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
        sock.setsockopt(socket.SOL_IP, IP_LOCAL_PORT_RANGE, struct.pack("I", low | (high << 16)))
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
    if plan.get("nice"):
        # Below the server's priority: the clients' threads, always ready to
        # run, would otherwise take most of a small machine's cores from it.
        os.nice(plan["nice"])
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


def runClients(port, processes, sources, seconds, perConnection=1, size=100, mode="client"):
    """
    Churn from C{processes} spawned processes (process C{p} from
    C{sources[p % len(sources)]}) for C{seconds}, and wait for them.

    :return: each process's summary (see L{clientProcess}).
    """
    context = multiprocessing.get_context("spawn")
    go, results, ready, started = context.Event(), context.Queue(), [], []
    for p in range(processes):
        plan = {
            "host": "127.0.0.1",
            "port": port,
            "source": sources[p % len(sources)],
            "mode": mode,
            "size": size,
            "perConnection": perConnection,
            "portRange": None,
            "stopOnExhaustion": False,
            "seconds": seconds,
            "threads": 1,
        }
        event = context.Event()
        process = context.Process(target=clientProcess, args=(p, plan, event, go, results))
        process.start()
        ready.append(event)
        started.append(process)
    for event in ready:
        event.wait(120)
    go.set()
    done = [results.get(timeout=seconds + 120) for _ in started]
    for process in started:
        process.join(30)
    return done
