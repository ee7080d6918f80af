# -*- test-case-name: tests.compat.test_confluent_kafka -*-
"""
What L{gateway.compat.confluent_kafka} relies on, checked against the
installed confluent-kafka with real producers (pointed where nothing
listens: C{produce} only queues, a purge reports every record through
confluent-kafka's own delivery report trampoline): the C extension binds to
the producer's handle, and the records it produces come back in delivery
reports exactly as C{Producer.produce}'s do.  When a compiler and Python's
headers are present the extension must have been built (setup.py, and
C{scripts/_venv.sh} for the checkout), and a wheel built without a compiler
still installs, without it.
"""

import gc
import os
import shutil
import subprocess
import sys
import sysconfig
import weakref
import zipfile
from pathlib import Path

import pytest
from confluent_kafka import Producer

from gateway.compat import confluent_kafka as compat

ROOT = Path(__file__).resolve().parent.parent.parent


def canCompile():
    """
    :return: whether this machine can build the extension: a C compiler and
        Python's headers.
    """
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    return shutil.which(cc) is not None and headers.exists() and sys.platform == "linux"


def extension():
    """
    :return: the extension module, or L{None} when it is not built.
    """
    try:
        from gateway.compat import _confluent
    except ImportError:
        return None
    return _confluent


class Reports:
    """
    A delivery callback recording C{(error name, topic, key, value)}.
    """

    def __init__(self):
        self.seen = []

    def __call__(self, error, message):
        self.seen.append((error and error.name(), message.topic(), message.key(), message.value()))


def offlineProducer(reports, **config):
    """
    A producer whose C{produce} only queues (nothing listens on port 1).
    """
    settings = {
        "bootstrap.servers": "127.0.0.1:1",
        "on_delivery": reports,
        "delivery.report.only.error": True,
        "log_level": 0,
    }
    settings.update(config)
    return Producer(settings)


def purgeAll(producer):
    producer.purge(in_queue=True, in_flight=True)
    producer.poll(0)


@pytest.fixture
def bound():
    """
    C{(producer, reports, produceMany)} with the extension bound (skipped,
    saying so, only where it cannot be built: L{test_builtWhereItCan}).
    """
    if extension() is None:
        assert not canCompile(), "a compiler is here but the extension was not built"
        pytest.skip("the C extension is not built (no compiler): the pure path is tested")
    reports = Reports()
    producer = offlineProducer(reports)
    produceMany, why = compat.accelerate(producer, reports)
    assert why is None
    yield producer, reports, produceMany
    purgeAll(producer)


def test_checkedAgainst():
    """
    C{CHECKED} is the confluent-kafka version the layout was read from.
    """
    assert compat.CHECKED == "2.16.1"


def test_builtWhereItCan():
    """
    With a compiler and Python's headers, the checkout has the extension
    (the installed copy's is checked by L{test_wheelCarriesExtension}).
    """
    if canCompile():
        assert extension() is not None


def test_recordsReportedLikeProduce(bound):
    """
    Records produced through the extension are reported by confluent-kafka's
    trampoline to the producer's callback, in order, with topic, key and
    value (their per-message state is confluent-kafka's layout); each
    report releases the reference to the callback the record held.
    """
    producer, reports, produceMany = bound
    before = sys.getrefcount(reports)
    headers = [("gateway-listener", b"lines"), ("gateway-peer", b"127.0.0.1:1")]
    assert produceMany("t", [b"a", b"bb", b"ccc"], b"k", headers) == 3
    assert sys.getrefcount(reports) == before + 3
    producer.produce("t", b"dddd", b"k", headers=headers)
    purgeAll(producer)
    assert reports.seen == [
        ("_PURGE_QUEUE", "t", b"k", value) for value in (b"a", b"bb", b"ccc", b"dddd")
    ]
    assert sys.getrefcount(reports) == before


def test_cycleCollected():
    """
    The usual holder of the bound path is also the producer's C{on_delivery}
    (a bound method of the client): the collector frees the cycle, and the
    producer with it, when nothing else holds them.
    """
    if extension() is None:
        pytest.skip("the C extension is not built (see test_builtWhereItCan)")

    class Client:
        def delivered(self, error, message):
            pass

    client = Client()
    client.producer = offlineProducer(client.delivered)
    client.produceMany, _ = compat.accelerate(client.producer, client.delivered)
    assert client.produceMany("t", [b"x"], None, None) == 1
    purgeAll(client.producer)  # the record's state holds the callback until reported
    gone = weakref.ref(client)
    del client
    gc.collect()
    assert gone() is None


def test_noKeyNoHeaders(bound):
    """
    A record without key or headers is produced as such.
    """
    producer, reports, produceMany = bound
    assert produceMany("t", (b"x",), None, None) == 1
    purgeAll(producer)
    assert reports.seen == [("_PURGE_QUEUE", "t", None, b"x")]


def test_stopsWhereTheQueueIsFull():
    """
    A full queue ends the call: it returns how many were taken, and the
    next record is refused by C{Producer.produce} too (the pure path then
    holds it).
    """
    if extension() is None:
        pytest.skip("the C extension is not built (see test_builtWhereItCan)")
    reports = Reports()
    producer = offlineProducer(reports, **{"queue.buffering.max.messages": 2})
    produceMany, _ = compat.accelerate(producer, reports)
    assert produceMany("t", [b"1", b"2", b"3", b"4"], b"k", None) == 2
    with pytest.raises(BufferError):
        producer.produce("t", b"3", b"k")
    purgeAll(producer)
    assert [value for *_, value in reports.seen] == [b"1", b"2"]


def test_leavesWhatItCannotTake(bound):
    """
    A value that is not C{bytes}, headers it cannot encode, a topic that is
    not text: it takes nothing from there and raises nothing (the pure path
    judges those records).
    """
    producer, reports, produceMany = bound
    assert produceMany("t", [b"x", bytearray(b"y"), b"z"], None, None) == 1
    assert produceMany("t", [b"x"], None, [("h", 1)]) == 0
    assert produceMany("t", [b"x"], None, [("h",)]) == 0
    assert produceMany(b"t", [b"x"], None, None) == 0
    assert produceMany("t", [b"x"], "not bytes", None) == 0
    assert produceMany("\udc80", [b"x"], None, None) == 0
    purgeAll(producer)
    assert [value for *_, value in reports.seen] == [b"x"]


def test_refusesAnotherLayout():
    """
    An object whose word after the header is not a librdkafka handle is
    refused with a one-line reason (the pure path runs).
    """
    module = extension()
    if module is None:
        pytest.skip("the C extension is not built (see test_builtWhereItCan)")
    Producer({"log_level": 0})  # librdkafka is loaded
    path = compat.librdkafkaPath()
    with pytest.raises(ValueError, match="no handle"):
        module.bind(0.0, path, print)
    with pytest.raises(ValueError, match="is not loaded"):
        module.bind(0.0, "/nonexistent/librdkafka.so.1", print)


def test_pureWhenAsked(monkeypatch):
    """
    C{GATEWAY_PURE_PYTHON} set: no binding, and the reason says so.
    """
    monkeypatch.setenv(compat.PURE_PYTHON_ENV, "1")
    producer = offlineProducer(Reports())
    assert compat.accelerate(producer, print) == (None, "GATEWAY_PURE_PYTHON is set")


def test_notAProducer():
    """
    Anything but a confluent-kafka producer (a test's fake) runs the pure
    path.
    """
    expected = "not a confluent-kafka Producer (object)"
    if extension() is None:
        expected = "the C extension is not built"
    assert compat.accelerate(object(), print) == (None, expected)


def test_librdkafkaPath(tmp_path):
    """
    confluent-kafka's own librdkafka is preferred; a single other one is
    taken; several others, or none, are not.
    """
    maps = tmp_path / "maps"

    def lines(*paths):
        maps.write_text(
            "".join(f"7f00-7f01 r-xp 00000000 08:01 1 {path}\n" for path in paths)
            + "7f02-7f03 rw-p 00000000 00:00 0 \n"
        )
        return compat.librdkafkaPath(str(maps))

    own = "/v/site-packages/confluent_kafka.libs/librdkafka-0cb9.so.1"
    assert lines("/usr/lib/librdkafka.so.1", own) == own
    assert lines("/usr/lib/librdkafka.so.1") == "/usr/lib/librdkafka.so.1"
    assert lines("/a/librdkafka.so.1", "/b/librdkafka.so.1") is None
    assert lines("/usr/lib/libc.so.6") is None
    assert compat.librdkafkaPath(str(tmp_path / "missing")) is None


def _wheel(out, **env):
    """
    Build the wheel from the sdist, as C{pip install} from source does (no
    file of the checkout's own build can leak in).

    :return: the names of the extension's files in it.
    """
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        env={**os.environ, **env},
    )
    [path] = out.glob("*.whl")
    return {name for name in zipfile.ZipFile(path).namelist() if "_confluent" in name}


@pytest.mark.skipif(not canCompile(), reason="no C compiler or Python headers here")
def test_wheelCarriesExtension(tmp_path):
    """
    With a compiler, the wheel carries the built extension.
    """
    names = _wheel(tmp_path)
    assert [n for n in names if n.endswith(".so")], names


def test_wheelWithoutCompiler(tmp_path):
    """
    Without a compiler (C{CC=false}) the wheel still builds, without the
    extension: C{optional=True}.
    """
    assert _wheel(tmp_path, CC="false", LDSHARED="false") == set()
