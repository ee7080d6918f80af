"""
What the kernel holds during a churn run, and the kernel settings a run may
change for a few seconds (always put back), for C{bench/churn.py}.

Socket states come from C{ss} (the kernel's C{sock_diag} tables, TIME_WAIT
included); each side of a loopback connection is its own socket, told apart
by which end has the gateway's port.
"""

import contextlib
import subprocess
from collections import Counter
from pathlib import Path

#: C{ss} state names, shortened for the tables.
_STATES = {
    "ESTAB": "ESTAB",
    "TIME-WAIT": "TIME_WAIT",
    "SYN-SENT": "SYN_SENT",
    "SYN-RECV": "SYN_RECV",
    "FIN-WAIT-1": "FIN_WAIT1",
    "FIN-WAIT-2": "FIN_WAIT2",
    "CLOSE-WAIT": "CLOSE_WAIT",
    "LAST-ACK": "LAST_ACK",
    "CLOSING": "CLOSING",
    "LISTEN": "LISTEN",
}


def socketStates(port):
    """
    The TCP sockets at either end of connections to C{port}.

    :return: C{(clientSide, gatewaySide, portsBySource)}: state counts of
        the sockets whose remote port is C{port} (the clients'), of those
        whose local port is C{port} (the server's, listeners left out), and
        for the client side how many source ports each source address
        holds, in any state.
    """
    out = subprocess.run(
        ["ss", "-Htan", f"( sport = :{port} or dport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    client, server, sources = Counter(), Counter(), Counter()
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        state = _STATES.get(fields[0], fields[0])
        local, remote = fields[3], fields[4]
        address, _, localPort = local.rpartition(":")
        if state == "LISTEN":
            continue
        if localPort == str(port):
            server[state] += 1
        if remote.rpartition(":")[2] == str(port):
            client[state] += 1
            sources[address] += 1
    return client, server, sources


def sysctlPath(name):
    return Path("/proc/sys") / name.replace(".", "/")


@contextlib.contextmanager
def sysctl(settings):
    """
    Set kernel settings (C{{name: value}}) for the C{with} block only, and
    put back what they were, whatever happens inside.  An empty mapping
    changes nothing.
    """
    before = {}
    try:
        for name, value in settings.items():
            path = sysctlPath(name)
            before[name] = path.read_text().strip()
            path.write_text(str(value))
            print(f"  set {name} = {value} (was {before[name]})", flush=True)
        yield before
    finally:
        for name, value in before.items():
            sysctlPath(name).write_text(value)
            now = sysctlPath(name).read_text().strip()
            print(f"  restored {name} = {now}", flush=True)


def localPortRange():
    """
    C{net.ipv4.ip_local_port_range} as C{(low, high)}.
    """
    low, high = sysctlPath("net.ipv4.ip_local_port_range").read_text().split()
    return int(low), int(high)
