"""
Concurrent connections held by one gateway process, against a real Kafka.

Starts a local Kafka (C{gateway.devkafka}, broker name "conns") and one
C{twistd -n gateway} listening on C{0.0.0.0} (its soft C{RLIMIT_NOFILE}
raised to the hard limit by this benchmark: the gateway does not raise it
itself yet), then:

  1. client processes (spawned; each holds at most C{--per-process}
     sockets, under its own descriptor limit) open C{--connections}
     connections with non-blocking connects and a selector, at most
     C{--window} connects in flight per process, each socket bound to one of
     C{--sources} loopback source addresses (127.0.0.1, 127.0.0.2, ...: one
     source address has only C{ip_local_port_range} ports, about 28,000);
     connects failing with ECONNREFUSED, ETIMEDOUT (...) are retried up to
     C{--retries} times and counted;
  2. once the gateway reports every connection open (its C{/status.json}),
     its RSS is read with all connections idle;
  3. every client sends one message on each connection
     (C{client-K-conn-J\\n}) and keeps it open; the benchmark waits until
     the topic's high watermarks add up to the connections the gateway
     accepted, then consumes the topic and checks every message arrived once;
  4. everything is closed (sockets, SIGTERM to the gateway, broker stopped),
     also on error.

It prints connections held (client side and gateway side), time to connect
all, the accept rate, the gateway's RSS (VmRSS/VmHWM) before connecting,
with N idle connections and after the messages, RSS per connection,
descriptors used (C{/proc/<pid>/fd}), TCP connections from the gateway to
Kafka, and the kernel settings and limits relied on.

C{--push} is for going past the descriptor limit: connects that are not
done by C{--connect-timeout} are given up and counted, the run goes on with
the connections the gateway accepted, and C{--release M} then closes M
client connections to show whether the gateway accepts the waiting ones.

C{--allocations} instead runs an in-process experiment (no broker, no
sockets): 10,000 C{lines} protocols built through the framing plugin, each
connected to a C{StringTransport} and to a real L{gateway.router.Router}
(with a stub producer), measured with C{tracemalloc} and C{sys.getsizeof}.

Run from the repository root:

    .venv/bin/python bench/connections.py [--connections 19000]
        [--sources 4] [--per-process 9500] [--window 1000] [--retries 5]
        [--connect-timeout 180] [--push] [--release 0] [--partitions 4]
    .venv/bin/python bench/connections.py --allocations [--protocols 10000]
"""

import argparse
import errno
import http.client
import json
import multiprocessing
import os
import resource
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # tests.integration

from _common import procStatus, rate, table  # noqa: E402

#: Linux's IP_BIND_ADDRESS_NO_PORT: bind() to an address picks the port at
#: connect() time, from the ports free for that destination.
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
#: connect() failures worth trying again.
RETRYABLE = {
    errno.ECONNREFUSED, errno.ETIMEDOUT, errno.ECONNRESET, errno.EAGAIN,
    errno.EHOSTUNREACH, errno.ENETUNREACH,
}
PROBLEMS = ("#warn]", "#error]", "#critical]", "Traceback", "Unhandled")


def raiseNoFile():
    """
    Raise this process's soft C{RLIMIT_NOFILE} to the hard limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# The client process


def _take(issued, allowed):
    """
    Take one connect credit, if the gateway has accepted enough.
    """
    with issued.get_lock():
        if allowed is None or issued.value < allowed.value:
            issued.value += 1
            return True
    return False


def _giveBack(issued):
    with issued.get_lock():
        issued.value -= 1


def _connectAll(port, dest, targets, window, retries, deadline, issued, allowed):
    """
    Connect every target, C{window} at a time.

    :param targets: C{(index, sourceAddress)} pairs.
    :return: C{(sockets by index, failures Counter, retries Counter,
        first connect time, last connect time)}.
    """
    selector = selectors.DefaultSelector()
    pending = deque((j, src, 0) for j, src in targets)
    inflight = 0
    connected = {}
    failed = Counter()
    retried = Counter()

    def fail(j, src, attempt, code):
        # A failed connect will never be accepted: its credit is free again.
        _giveBack(issued)
        if code in RETRYABLE and attempt < retries:
            retried[errno.errorcode.get(code, str(code))] += 1
            pending.append((j, src, attempt + 1))
        else:
            failed[errno.errorcode.get(code, str(code))] += 1

    while pending or inflight:
        if time.monotonic() > deadline:
            for key in list(selector.get_map().values()):
                key.fileobj.close()
            failed["gave up (connect timeout)"] += inflight + len(pending)
            break
        while pending and inflight < window:
            if not _take(issued, allowed):
                break
            j, src, attempt = pending.popleft()
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                sock.bind((src, 0))
                code = sock.connect_ex((dest, port))
            except OSError as e:
                sock.close()
                fail(j, src, attempt, e.errno)
                if e.errno in (errno.EMFILE, errno.ENFILE):
                    break
                continue
            if code == 0:
                connected[j] = sock
            elif code == errno.EINPROGRESS:
                selector.register(sock, selectors.EVENT_WRITE, (j, src, attempt))
                inflight += 1
            else:
                sock.close()
                fail(j, src, attempt, code)
        for key, _ in selector.select(timeout=0.002 if pending else 0.5):
            sock = key.fileobj
            j, src, attempt = key.data
            selector.unregister(sock)
            inflight -= 1
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code == 0:
                connected[j] = sock
            else:
                sock.close()
                fail(j, src, attempt, code)
    selector.close()
    return connected, failed, retried


def _dropClosed(connected):
    """
    Forget (and close) the sockets the gateway closed: C{recv} peeks at
    end of file or a reset.

    :return: how many there were.
    """
    closed = []
    for j, sock in connected.items():
        try:
            if sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                closed.append(j)
        except BlockingIOError:
            pass
        except OSError:
            closed.append(j)
    for j in closed:
        connected.pop(j).close()
    return len(closed)


def clientProcess(number, port, dest, targets, window, retries, timeout,
                  issued, allowed, commands, results):
    """
    One client process: connect its share, then obey the parent's commands
    (C{send}, C{release N}, C{close}), answering each on C{results}.
    """
    connected = {}
    try:
        raiseNoFile()
        start = time.monotonic()
        connected, failed, retried = _connectAll(
            port, dest, targets, window, retries, start + timeout, issued,
            allowed,
        )
        end = time.monotonic()
        sources = Counter(s.getsockname()[0] for s in connected.values())
        results.put(("connected", number, {
            "start": time.time() - (end - start), "seconds": end - start,
            "held": len(connected), "failed": dict(failed),
            "retried": dict(retried), "sources": dict(sources),
            "nofile": resource.getrlimit(resource.RLIMIT_NOFILE),
        }))
        while True:
            command, arg = commands.get()
            if command == "send":
                sent = errors = 0
                closed = _dropClosed(connected)
                for j, sock in connected.items():
                    try:
                        sock.send(b"client-%d-conn-%d\n" % (number, j))
                        sent += 1
                    except OSError:
                        errors += 1
                results.put(("sent", number, {"sent": sent, "errors": errors,
                                              "closedByPeer": closed}))
            elif command == "release":
                # Close some, open as many new ones, and send on those the
                # gateway keeps.
                for j in sorted(connected)[:arg]:
                    connected.pop(j).close()
                fresh = {}
                nextIndex = max(j for j, _ in targets) + 1
                for n in range(arg):
                    sock = socket.socket()
                    sock.settimeout(2)
                    try:
                        sock.bind((targets[n % len(targets)][1], 0))
                        sock.connect((dest, port))
                    except OSError:
                        sock.close()
                        continue
                    fresh[nextIndex + n * 1000] = sock
                time.sleep(2)
                closed = _dropClosed(fresh)
                sent = 0
                for j, sock in fresh.items():
                    sock.send(b"client-%d-conn-%d\n" % (number, j))
                    sent += 1
                connected.update(fresh)
                results.put(("released", number, {
                    "held": len(connected), "reopened": sent,
                    "closedByPeer": closed,
                }))
            elif command == "close":
                break
    except BaseException as e:
        results.put(("error", number, f"{type(e).__name__}: {e}"))
        raise
    finally:
        for sock in connected.values():
            sock.close()
        results.put(("closed", number, {}))


class Clients:
    """
    The client processes of one run.
    """

    def __init__(self, port, connections, sources, perProcess, window, retries,
                 timeout, ahead, dest="127.0.0.1"):
        context = multiprocessing.get_context("spawn")
        self.results = context.Queue()
        #: Connects started (and not failed) by every process together, and
        #: how many they may start: the connections the gateway has accepted
        #: plus C{ahead} (under the listen backlog), or no limit.
        self.issued = context.Value("q", 0)
        self.allowed = context.Value("q", ahead, lock=False) if ahead else None
        addresses = [f"127.0.0.{i + 1}" for i in range(sources)]
        count = max(1, -(-connections // perProcess))
        self.processes = []
        self.commands = []
        for k in range(count):
            mine = list(range(k, connections, count))
            targets = [(j, addresses[j % sources]) for j in mine]
            commands = context.Queue()
            process = context.Process(
                target=clientProcess,
                args=(k, port, dest, targets, window, retries, timeout,
                      self.issued, self.allowed, commands, self.results),
                daemon=True,
            )
            self.processes.append(process)
            self.commands.append(commands)

    def start(self):
        for process in self.processes:
            process.start()

    def gather(self, state, timeout):
        """
        One answer of every process, by process number.
        """
        out = {}
        deadline = time.monotonic() + timeout
        while len(out) < len(self.processes):
            got, number, detail = self.results.get(
                timeout=max(1.0, deadline - time.monotonic())
            )
            if got == "error":
                raise RuntimeError(f"client process {number} failed: {detail}")
            if got != state:
                raise RuntimeError(f"client process {number}: {got}, not {state}")
            out[number] = detail
        return out

    def command(self, command, arg=None, state=None, timeout=120.0):
        for queue in self.commands:
            queue.put((command, arg))
        return self.gather(state, timeout) if state else None

    def stop(self):
        for queue in self.commands:
            try:
                queue.put(("close", None))
            except (OSError, ValueError):
                pass
        for process in self.processes:
            process.join(30)
            if process.is_alive():
                process.terminate()
                process.join()


# The gateway and what the system says about it


def gatewayProcessClass():
    from tests.integration.gatewayprocess import GatewayProcess

    class RaisedLimitGateway(GatewayProcess):
        """
        L{GatewayProcess} whose child starts with its soft C{RLIMIT_NOFILE}
        raised to the hard limit (the gateway does not raise it itself yet).
        """

        def start(self, listeners, timeout=60.0):
            popen = subprocess.Popen

            def withLimit(*args, **kwargs):
                return popen(*args, preexec_fn=raiseNoFile, **kwargs)

            subprocess.Popen = withLimit
            try:
                return GatewayProcess.start(self, listeners, timeout)
            finally:
                subprocess.Popen = popen

    return RaisedLimitGateway


def status(httpPort):
    """
    The gateway's C{/status.json}, or L{None} when it does not answer (at
    its descriptor limit it cannot accept the request's connection either).
    """
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{httpPort}/status.json", timeout=10
        ) as response:
            return json.load(response)
    except (OSError, ValueError, http.client.HTTPException):
        return None


def listenerCounts(snap, pid, baseFds):
    """
    Open and accepted connections of the listener: from C{/status.json}, or
    from the descriptors when it does not answer.
    """
    if snap is not None:
        listener = snap["listeners"][0]
        return listener["connections"], listener["accepted"], True
    open_ = fdCount(pid) - baseFds
    return open_, None, False


def fdCount(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def processLimit(pid, name="Max open files"):
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith(name):
                    soft, hard = line[len(name):].split()[:2]
                    return soft, hard
    except OSError:
        pass
    return None


def slabKb():
    """
    The kernel's slab memory (system wide, kB): socket structures live
    there, not in any process's RSS.
    """
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("Slab:"):
                return int(line.split()[1])
    return None


def memory(pid):
    return {
        "rss": procStatus(pid, "VmRSS"), "hwm": procStatus(pid, "VmHWM"),
        "fds": fdCount(pid), "slab": slabKb(),
    }


def readSysctl(name):
    path = Path("/proc/sys") / name.replace(".", "/")
    try:
        return " ".join(path.read_text().split())
    except OSError:
        return "?"


def kernelSettings():
    names = [
        "net.ipv4.ip_local_port_range", "net.core.somaxconn",
        "net.ipv4.tcp_max_syn_backlog", "net.ipv4.tcp_syncookies",
        "net.ipv4.tcp_abort_on_overflow", "net.ipv4.tcp_syn_retries",
        "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_tw_reuse",
        "fs.file-max", "fs.nr_open", "fs.file-nr",
    ]
    return [(name, readSysctl(name)) for name in names]


def listenBacklog(port):
    """
    The listening socket's backlog as C{ss} reports it (Send-Q of a
    listener), or L{None}.
    """
    try:
        out = subprocess.run(
            ["ss", "-ltnH", f"sport = :{port}"], capture_output=True,
            text=True, timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            return int(fields[2])
    return None


def mib(kb):
    return "?" if kb is None else f"{kb / 1024:,.1f} MiB"


# One run


def run(args, bootstrap, topic):
    from tests.integration.gatewayprocess import CLEAN_EXIT, socketsTo
    from throughput import Watermarks

    brokerPort = int(bootstrap.rsplit(":", 1)[1])
    workdir = tempfile.TemporaryDirectory(prefix="bench-connections-")
    gateway = gatewayProcessClass()(workdir.name, [
        "--bootstrap-servers", bootstrap,
        "--topic", topic,
        "--listen", "lines=tcp:0:interface=0.0.0.0",
        "--http", "tcp:0:interface=127.0.0.1",
        "--health-interval", "5",
    ])
    clients = marks = None
    r = {"topic": topic}
    try:
        gateway.start(listeners=1, timeout=60)
        pid = gateway.process.pid
        port = next(iter(gateway.ports.values()))
        r.update(pid=pid, port=port, nofile=processLimit(pid),
                 backlog=listenBacklog(port))
        marks = Watermarks(bootstrap, topic, args.partitions)
        if marks.total() != 0:
            raise RuntimeError(f"topic {topic} is not empty")
        # Let the producer and the health probe connect, and the heap settle.
        deadline = time.monotonic() + 30
        while (status(gateway.httpPort) or {}).get("kafkaConnections", 0) < 1:
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        time.sleep(2)
        r["before"] = memory(pid)
        r["kafkaBefore"] = socketsTo(pid, brokerPort)

        clients = Clients(
            port, args.connections, args.sources, args.per_process,
            args.window, args.retries, args.connect_timeout, args.ahead,
        )
        # The gateway's side, from its descriptors (no request to the
        # gateway, so it is not slowed down): connections accepted so far,
        # sampled every few milliseconds, which also paces the clients.
        baseFds = r["before"]["fds"]
        samples = []
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                n = fdCount(pid)
                if n is None:
                    return
                accepted = n - baseFds
                samples.append((time.time(), accepted))
                if clients.allowed is not None:
                    clients.allowed.value = max(0, accepted) + args.ahead
                time.sleep(0.003)

        watcher = threading.Thread(target=watch, daemon=True)
        began = time.time()
        clients.start()
        watcher.start()
        try:
            clientsDone = clients.gather(
                "connected", args.connect_timeout + 120
            )
            r["clients"] = clientsDone
            clientHeld = sum(d["held"] for d in clientsDone.values())
            # Wait for the gateway to accept what the clients hold (the
            # accept queue may still hold some), or to stop making progress.
            last, stalled = None, time.monotonic()
            while samples[-1][1] < clientHeld:
                if samples[-1][1] != last:
                    last, stalled = samples[-1][1], time.monotonic()
                elif time.monotonic() - stalled > args.settle:
                    break
                if gateway.process.poll() is not None:
                    raise RuntimeError(f"gateway exited\n{gateway.log()[-3000:]}")
                time.sleep(0.05)
        finally:
            stop.set()
            watcher.join()
        firstConnect = min(d["start"] for d in clientsDone.values())
        r["connectSeconds"] = max(
            d["start"] + d["seconds"] for d in clientsDone.values()
        ) - firstConnect
        top = max(n for _, n in samples)
        acceptedAll = next(t for t, n in samples if n >= top)
        r["acceptSeconds"] = acceptedAll - firstConnect
        r["spawnSeconds"] = firstConnect - began
        # Accepts per second, per second of the run: the slowest and fastest.
        perSecond = Counter()
        for t, n in samples:
            perSecond[int(t - firstConnect)] = n
        marks_ = [perSecond[k] for k in sorted(perSecond)]
        steps = [b - a for a, b in zip([0] + marks_, marks_)]
        r["acceptSteps"] = steps
        r["samples"] = len(samples)
        time.sleep(2)
        snap = status(gateway.httpPort)
        r["gatewayOpen"], r["gatewayAccepted"], r["httpAnswered"] = \
            listenerCounts(snap, pid, baseFds)
        r["clientHeld"] = clientHeld
        r["idle"] = memory(pid)
        r["kafkaIdle"] = socketsTo(pid, brokerPort)
        r["kafkaIdleStatus"] = snap["kafkaConnections"] if snap else "no answer"
        r["samples"] = samples

        # One message on every connection.
        sendStart = time.monotonic()
        sent = clients.command("send", state="sent")
        r["sent"] = sum(d["sent"] for d in sent.values())
        r["sendErrors"] = sum(d["errors"] for d in sent.values())
        r["closedByPeer"] = sum(d["closedByPeer"] for d in sent.values())
        expected = r["gatewayOpen"]
        held = 0
        deadline = time.monotonic() + args.timeout
        while held < expected and time.monotonic() < deadline:
            time.sleep(0.2)
            held = marks.total()
        r["deliverSeconds"] = time.monotonic() - sendStart
        time.sleep(1)
        r["watermarks"] = marks.total()
        r["after"] = memory(pid)
        r["kafkaAfter"] = socketsTo(pid, brokerPort)
        r["statusAfter"] = status(gateway.httpPort)

        if args.release:
            before = r["watermarks"]
            released = clients.command("release", args.release, state="released",
                                       timeout=2.5 * args.release + 30)
            reopened = sum(d["reopened"] for d in released.values())
            deadline = time.monotonic() + 30
            while marks.total() < before + reopened and time.monotonic() < deadline:
                time.sleep(0.2)
            snap = status(gateway.httpPort)
            open_, accepted, answered = listenerCounts(snap, pid, baseFds)
            r["release"] = {
                "httpAnswered": answered,
                "released": args.release * len(clients.processes),
                "reopened": reopened,
                "reopenedClosedByPeer": sum(
                    d["closedByPeer"] for d in released.values()),
                "open": open_, "accepted": accepted,
                "watermarks": marks.total(), "before": before,
                "fds": fdCount(pid),
            }
            r["watermarks"] = r["release"]["watermarks"]
    finally:
        if clients is not None:
            clients.stop()
        if marks is not None:
            marks.close()
        r["exitCode"] = gateway.stop()
        log = gateway.log()
        workdir.cleanup()
    r["clean"] = r["exitCode"] in CLEAN_EXIT
    r["logLines"] = len(log.splitlines())
    problems = [l for l in log.splitlines() if any(w in l for w in PROBLEMS)]
    r["logProblems"] = problems
    r["emfileLines"] = Counter(
        line.split("] ", 1)[-1].split(" from ")[0][:60]
        for line in log.splitlines() if "EMFILE" in line
    )
    return r


def verify(bootstrap, topic, count):
    """
    Consume the topic: how many records, how many distinct values, and any
    value that is not a client message.
    """
    from gateway.devkafka import consume

    records = consume(bootstrap, topic, count=count, timeout=60)
    values = [rec.value for rec in records]
    distinct = set(values)
    odd = [v for v in distinct if not v.startswith(b"client-")]
    return len(values), len(distinct), odd[:3]


def report(args, r, consumed):
    n = r["clientHeld"]
    print()
    print(f"gateway pid {r['pid']} on 0.0.0.0:{r['port']}; RLIMIT_NOFILE "
          f"soft/hard {'/'.join(r['nofile'] or '?')}; listen backlog "
          f"{r['backlog']} (ss Send-Q)")
    rows = []
    for number, d in sorted(r["clients"].items()):
        rows.append([
            f"client {number}", f"{d['held']:,}", f"{d['seconds']:.1f}",
            ", ".join(f"{k} {v}" for k, v in sorted(d["sources"].items())),
            sum(d["retried"].values()),
            ", ".join(f"{k} {v}" for k, v in d["retried"].items()) or "-",
            ", ".join(f"{k} {v}" for k, v in d["failed"].items()) or "-",
            "/".join(map(str, d["nofile"])),
        ])
    print(table(["process", "held", "s", "per source address", "retries",
                 "retried for", "failed", "nofile"], rows))
    print()
    lines = [
        ("connections asked for", f"{args.connections:,}"),
        ("connections held, client side", f"{n:,}"),
        ("connections open in the gateway", f"{r['gatewayOpen']:,} "
         + (f"(accepted {r['gatewayAccepted']:,})" if r["httpAnswered"] else
            "(from its descriptors: /status.json did not answer)")),
        ("client processes start-up", f"{r['spawnSeconds']:.1f} s"),
        ("time to connect all (clients)", f"{r['connectSeconds']:.1f} s "
         f"({rate(n / r['connectSeconds'])} connects/s)"),
        ("time until the gateway held them", f"{r['acceptSeconds']:.1f} s "
         f"({rate(r['gatewayOpen'] / r['acceptSeconds'])} accepts/s; "
         f"per second of the run {min(r['acceptSteps'][:-1] or [0]):,}"
         f"..{max(r['acceptSteps']):,})"),
    ]
    b, i, a = r["before"], r["idle"], r["after"]
    perConn = (i["rss"] - b["rss"]) * 1024 / max(1, r["gatewayOpen"])
    lines += [
        ("gateway RSS before connecting", f"{mib(b['rss'])} (HWM {mib(b['hwm'])})"),
        (f"gateway RSS, {r['gatewayOpen']:,} idle connections",
         f"{mib(i['rss'])} (HWM {mib(i['hwm'])})"),
        ("gateway RSS after one message each", f"{mib(a['rss'])} (HWM {mib(a['hwm'])})"),
        ("RSS per idle connection", f"{perConn:,.0f} bytes"),
        ("RSS per connection after a message",
         f"{(a['rss'] - b['rss']) * 1024 / max(1, r['gatewayOpen']):,.0f} bytes"),
        ("kernel slab, system wide, per connection",
         f"{(i['slab'] - b['slab']) * 1024 / max(1, r['gatewayOpen']):,.0f} bytes "
         "(both ends of each loopback connection; not in any RSS)"),
        ("gateway descriptors", f"{b['fds']} before, {i['fds']:,} idle, "
         f"{a['fds']:,} after"),
        ("gateway TCP connections to Kafka",
         f"{r['kafkaBefore']} before, {r['kafkaIdle']} with all clients "
         f"(status.json: {r['kafkaIdleStatus']}), {r['kafkaAfter']} after"),
        ("messages sent", f"{r['sent']:,} ({r['sendErrors']} send errors; "
         f"{r['closedByPeer']:,} connections found closed by the gateway first)"),
        ("Kafka high watermarks", f"{r['watermarks']:,} "
         f"(waited {r['deliverSeconds']:.1f} s)"),
        ("consumed / distinct", f"{consumed[0]:,} / {consumed[1]:,}"
         + (f" odd values {consumed[2]}" if consumed[2] else "")),
    ]
    if "release" in r:
        rel = r["release"]
        lines.append((
            "after releasing", f"{rel['released']:,} client connections and "
            f"opening {rel['reopened'] + rel['reopenedClosedByPeer']:,} new "
            f"({rel['reopenedClosedByPeer']:,} closed by the gateway): "
            f"gateway open {rel['open']:,}, accepted "
            f"{rel['accepted'] if rel['accepted'] is not None else '?'} in all "
            f"(/status.json {'answered' if rel['httpAnswered'] else 'did not answer'}), "
            f"watermarks {rel['before']:,} -> {rel['watermarks']:,}, "
            f"{rel['fds']:,} descriptors"))
    lines += [
        ("gateway exit on SIGTERM", f"{r['exitCode']} "
         f"({'clean' if r['clean'] else 'NOT clean'})"),
        ("gateway log", f"{r['logLines']:,} lines, {len(r['logProblems']):,} "
         "warnings/errors"),
    ]
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        print(f"{k:<{width}}  {v}")
    if r["emfileLines"]:
        print("gateway log lines about EMFILE (counted):")
        for line, count in r["emfileLines"].most_common(6):
            print(f"  {count:>7,} x {line}")
    if r["logProblems"]:
        kinds = Counter(line.split("] ", 1)[-1][:100] for line in r["logProblems"])
        print("gateway log problems (first 100 chars, counted):")
        for line, count in kinds.most_common(8):
            print(f"  {count:>7,} x {line}")
    print()
    print("kernel settings and limits relied on:")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for name, value in kernelSettings():
        print(f"  {name:<32} {value}")
    print(f"  {'RLIMIT_NOFILE (benchmark)':<32} {soft}/{hard}")
    print(f"  {'RLIMIT_NOFILE (gateway)':<32} {'/'.join(r['nofile'] or '?')}")
    print(f"  {'gateway listen backlog':<32} {r['backlog']}")
    ok = consumed[0] == consumed[1] == r["watermarks"] == r["gatewayOpen"] \
        and not args.push and n == args.connections
    print()
    print("RESULT:", "every connection held and every message delivered once"
          if ok else "see above (not every connection/message)")
    return ok


# The in-process allocation experiment


class _StubService:
    """
    Stands in for the producer service: the router only needs C{produce}
    (and sets C{observer}).
    """

    observer = None

    def produce(self, topic, key, headers, value):
        pass


def _deepSizes(protocol):
    """
    C{sys.getsizeof} of what one connection's protocol holds of its own.
    """
    stream = protocol._stream
    closure = protocol.dataReceived
    send = stream.send
    rows = [
        ("protocol object (LinesProtocol)", sys.getsizeof(protocol)),
        (f"protocol __dict__ ({len(vars(protocol))} keys: "
         f"{', '.join(sorted(vars(protocol)))})", sys.getsizeof(vars(protocol))),
        ("dataReceived byte-counter closure (function)", sys.getsizeof(closure)),
        ("  its cells (stats, receive)",
         sum(sys.getsizeof(c) for c in closure.__closure__ or ())),
        ("  bound method dataReceived it holds",
         sys.getsizeof(closure.__closure__[0].cell_contents)
         if closure.__closure__ else 0),
        ("peer string 'host:port'", sys.getsizeof(protocol.peer)),
        ("MessageStream (__slots__)", sys.getsizeof(stream)),
        ("  send: functools.partial", sys.getsizeof(send)),
        ("  its args tuple (topic, key, headers)", sys.getsizeof(send.args)),
        ("  key bytes 'listener/peer'", sys.getsizeof(send.args[1])),
    ]
    headers = send.args[2]
    if headers:
        rows.append((
            "  headers: list + 2 tuples + 2 values",
            sys.getsizeof(headers) + sum(sys.getsizeof(t) for t in headers)
            + sum(sys.getsizeof(t[1]) for t in headers),
        ))
    return rows


def _transportSizes(transport):
    rows = [
        ("tcp.Server object", sys.getsizeof(transport)),
        (f"tcp.Server __dict__ ({len(vars(transport))} keys)",
         sys.getsizeof(vars(transport))),
        ("socket.socket object", sys.getsizeof(transport.socket)),
        ("logstr + repstr strings",
         sys.getsizeof(transport.logstr) + sys.getsizeof(transport.repstr)),
        ("client address tuple + host str",
         sys.getsizeof(transport.client) + sys.getsizeof(transport.client[0])),
    ]
    for name in ("fileno", "_tempDataBuffer", "dataBuffer"):
        value = getattr(transport, name, None)
        if value is not None:
            rows.append((f"  {name} ({type(value).__name__})", sys.getsizeof(value)))
    return rows


def allocations(count, real):
    """
    What each connection allocates in the gateway process, measured in
    process with C{tracemalloc}: (a) C{count} C{lines} protocols on
    C{StringTransport}s sharing one listener configuration and one real
    L{Router}; (b) C{real} connections accepted by a real Twisted port (the
    reactor is not run: the port's C{doRead} is called by hand), so the
    transport (C{tcp.Server}) and its socket object are counted too.
    """
    import gc
    import tracemalloc

    from twisted.internet import reactor

    from gateway.registry import loadFramings
    from gateway.router import Router
    from gateway.service import DEFAULT_MAX_MESSAGE_SIZE
    from gateway.testing import connectFraming

    raiseNoFile()
    plugin = loadFramings()["lines"]
    router = Router(_StubService(), "topic")
    protocol, _, _ = connectFraming(
        plugin, sink=router, name="lines", maxMessageSize=DEFAULT_MAX_MESSAGE_SIZE,
    )
    config = protocol.factory.config
    keep = [protocol]

    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    size0, _ = tracemalloc.get_traced_memory()
    for i in range(count):
        p, t, _ = connectFraming(plugin, config=config, peerPort=10000 + i)
        keep.append((p, t))
    gc.collect()
    size1, _ = tracemalloc.get_traced_memory()
    after = tracemalloc.take_snapshot()
    perA = (size1 - size0) / count
    top = after.compare_to(before, "lineno")[:12]

    # A StringTransport is not what a connection has: measure it alone.
    from twisted.internet.testing import StringTransport
    from twisted.internet.address import IPv4Address

    gc.collect()
    s0, _ = tracemalloc.get_traced_memory()
    transports = [
        StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", i))
        for i in range(count)
    ]
    s1, _ = tracemalloc.get_traced_memory()
    perStringTransport = (s1 - s0) / count
    del transports

    # (b) real accepted connections.

    factory = plugin.buildFactory(config)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    address = ("127.0.0.1", port.getHost().port)
    clientsSide = []
    gc.collect()
    r0, _ = tracemalloc.get_traced_memory()
    rBefore = tracemalloc.take_snapshot()
    opened0 = config.stats.accepted
    while len(clientsSide) < real:
        batch = []
        for _ in range(min(40, real - len(clientsSide))):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(address)
            batch.append(sock)
        time.sleep(0.002)
        port.doRead()
        clientsSide.extend(batch)
    while config.stats.accepted - opened0 < real:
        time.sleep(0.01)
        port.doRead()
    # Client sockets are allocated in this process too: leave them out.
    gc.collect()
    r1, _ = tracemalloc.get_traced_memory()
    rAfter = tracemalloc.take_snapshot()
    clientObjects = sum(sys.getsizeof(s) for s in clientsSide) + sys.getsizeof(clientsSide)
    perReal = (r1 - r0 - clientObjects) / real
    realTop = [
        d for d in rAfter.compare_to(rBefore, "lineno")
        if "connections.py" not in str(d.traceback)
    ][:12]
    tracemalloc.stop()
    served = list(router.clients)[-1]

    print(f"in-process allocations per connection (tracemalloc, Python "
          f"{sys.version.split()[0]})")
    print()
    print(f"(a) {count:,} LinesProtocol via connectFraming, one ListenerConfig, "
          f"a real Router (stub producer), StringTransport:")
    print(f"    {perA:,.0f} bytes per connection, of which the StringTransport "
          f"(+ its address and buffers) {perStringTransport:,.0f}: protocol "
          f"side {perA - perStringTransport:,.0f} bytes")
    print()
    print("    largest increases by line (all connections):")
    for stat in top:
        frame = stat.traceback[0]
        print(f"    {stat.size_diff / count:>8,.1f} B/conn  {stat.count_diff / count:>5.2f} "
              f"blocks/conn  {Path(frame.filename).name}:{frame.lineno}")
    print()
    print(f"(b) {real:,} connections accepted by a real Twisted port "
          f"(tcp.Server transports, socket objects):")
    print(f"    {perReal:,.0f} bytes per connection of Python heap")
    print()
    print("    largest increases by line:")
    for stat in realTop:
        frame = stat.traceback[0]
        print(f"    {stat.size_diff / real:>8,.1f} B/conn  {stat.count_diff / real:>5.2f} "
              f"blocks/conn  {Path(frame.filename).name}:{frame.lineno}")
    print()
    rows = _deepSizes(served) + _transportSizes(served.transport)
    rows.append(("router.clients dict (all entries) per connection",
                 round(sys.getsizeof(router.clients) / len(router.clients))))
    print(table(["object of one real connection (sys.getsizeof, shallow)", "bytes"],
                [[k, v] for k, v in rows]))
    for sock in clientsSide:
        sock.close()
    port.stopListening()
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=19000)
    parser.add_argument("--sources", type=int, default=4,
                        help="loopback source addresses 127.0.0.1..N")
    parser.add_argument("--per-process", type=int, default=9500,
                        help="sockets per client process at most")
    parser.add_argument("--window", type=int, default=1000,
                        help="connects in flight per client process")
    parser.add_argument("--retries", type=int, default=5)
    parser.add_argument("--ahead", type=int, default=40,
                        help="connects started ahead of the gateway's accepts "
                             "(keep under its listen backlog, 50); 0: no pacing")
    parser.add_argument("--connect-timeout", type=float, default=180.0)
    parser.add_argument("--settle", type=float, default=10.0,
                        help="seconds without progress before giving up on "
                             "accepts")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds to wait for the messages in Kafka")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--push", action="store_true",
                        help="past the limit: not every connection is expected")
    parser.add_argument("--release", type=int, default=0,
                        help="then close this many connections per client "
                             "process and see the gateway accept the waiting ones")
    parser.add_argument("--kafka-version", default="4")
    parser.add_argument("--allocations", action="store_true")
    parser.add_argument("--protocols", type=int, default=10000)
    parser.add_argument("--real", type=int, default=4000,
                        help="real accepted connections in --allocations")
    args = parser.parse_args(argv)

    if args.allocations:
        return allocations(args.protocols, args.real)

    raiseNoFile()
    from gateway.devkafka import DevKafka
    from throughput import createTopic

    print(f"bench/connections: {args.connections:,} connections, "
          f"{args.sources} source addresses, <= {args.per_process:,} per client "
          f"process, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')}",
          flush=True)
    broker = DevKafka(version=args.kafka_version, name="conns", port=None)
    ok = False
    try:
        began = time.monotonic()
        bootstrap = broker.start(timeout=120.0)
        print(f"Kafka {broker.version} on {bootstrap} "
              f"(started in {time.monotonic() - began:.1f} s)", flush=True)
        topic = createTopic(bootstrap, args.partitions)
        r = run(args, bootstrap, topic)
        consumed = verify(bootstrap, topic, r["watermarks"])
        ok = report(args, r, consumed)
    finally:
        broker.stop(wipe=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
