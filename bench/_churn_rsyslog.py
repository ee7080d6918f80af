"""
rsyslog C{imtcp} -> C{omkafka} as the reference server of C{bench/churn.py}:
the same clients, the same broker, its own process and configuration (never
the system's rsyslog service).

rsyslog need not be installed: C{--rsyslog ROOT} names a folder holding
C{usr/sbin/rsyslogd} and its modules, as C{dpkg -x} unpacks the Debian
packages (see C{bench/README.md}).
"""

import os
import signal
import subprocess
import time
from pathlib import Path

CONFIG = """\
global(workDirectory="{work}")
module(load="imtcp" maxSessions="20000")
module(load="omkafka")
template(name="raw" type="string" string="%rawmsg%")
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="kafka")
ruleset(name="kafka" queue.type="LinkedList" queue.size="500000"
        queue.dequeueBatchSize="1024") {{
  action(type="omkafka" broker=["{bootstrap}"] topic="{topic}" template="raw"
         partitions.auto="on"
         confParam=["acks=all", "enable.idempotence=true", "linger.ms=5"])
}}
"""


class Rsyslog:
    """
    One C{rsyslogd -n} with a configuration of its own in C{directory}.
    """

    def __init__(self, root, directory, bootstrap, topic, port):
        self.root = Path(root).resolve()
        self.directory = Path(directory)
        self.port = port
        work = self.directory / "work"
        work.mkdir(parents=True, exist_ok=True)
        self.config = self.directory / "rsyslog.conf"
        self.config.write_text(
            CONFIG.format(work=work, port=port, bootstrap=bootstrap, topic=topic)
        )
        self.process = None

    def start(self, timeout=30.0):
        libs = self.root / "usr/lib/x86_64-linux-gnu"
        env = dict(os.environ, LD_LIBRARY_PATH=str(libs))
        self.output = open(self.directory / "rsyslogd.out", "wb")
        self.process = subprocess.Popen(
            [
                str(self.root / "usr/sbin/rsyslogd"),
                "-n",
                "-f",
                str(self.config),
                "-i",
                str(self.directory / "rsyslogd.pid"),
                "-M",
                str(libs / "rsyslog"),
            ],
            env=env,
            stdout=self.output,
            stderr=subprocess.STDOUT,
        )
        import socket

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rsyslogd exited: {self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"rsyslogd did not listen on {self.port}: {self.log()}")

    @property
    def pid(self):
        return self.process.pid

    def log(self):
        return (self.directory / "rsyslogd.out").read_text(errors="replace")

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None:
            self.output.close()
        return self.process.returncode if self.process else None
