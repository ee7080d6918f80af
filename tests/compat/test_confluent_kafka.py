# -*- test-case-name: tests.compat.test_confluent_kafka -*-
"""
What L{gateway.compat.confluent_kafka} relies on, checked against the
installed confluent-kafka with real producers (pointed where nothing
listens: C{produce} only queues, and a purge fails every record): the C
extension, loaded as a librdkafka plugin, binds to the producer's handle,
and the records it produces that fail come back from its C{failures()}
with everything C{Producer.produce}'s reports carry, and their headers.
When a compiler and Python's headers are present the extension must have
been built (setup.py, and C{scripts/_venv.sh} for the checkout), and a
wheel built without a compiler still installs, without it.
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


def offlineProducer(reports, plugin=True, **config):
    """
    A producer whose C{produce} only queues (nothing listens on port 1),
    with the extension's plugin unless told otherwise.
    """
    settings = {
        "bootstrap.servers": "127.0.0.1:1",
        "on_delivery": reports,
        "delivery.report.only.error": True,
        "log_level": 0,
    }
    settings.update(config)
    if plugin:
        path, why = compat.plugin()
        assert why is None
        settings = compat.withPlugin(settings, path)
    return Producer(settings)


def purgeAll(producer):
    producer.purge(in_queue=True, in_flight=True)
    producer.poll(0)


def needExtension():
    """
    Skip, saying so, only where the extension cannot be built
    (L{test_builtWhereItCan}).
    """
    if extension() is None:
        assert not canCompile(), "a compiler is here but the extension was not built"
        pytest.skip("the C extension is not built (no compiler): the pure path is tested")


PURGED = -152  # RD_KAFKA_RESP_ERR__PURGE_QUEUE


@pytest.fixture
def bound():
    """
    C{(producer, reports, fast)} with the extension bound.
    """
    needExtension()
    reports = Reports()
    producer = offlineProducer(reports)
    fast, why = compat.accelerate(producer)
    assert why is None
    yield producer, reports, fast
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


def test_failuresCopied(bound):
    """
    Records produced through the extension that fail come back from
    C{failures()}, in order, with topic, key, value, headers and
    librdkafka's error code, once each; the producer's callback sees only
    the records C{Producer.produce} made.
    """
    producer, reports, fast = bound
    headers = [("gateway-listener", b"lines"), ("gateway-peer", "127.0.0.1:1")]
    assert fast.produceMany("t", [b"a", b"bb", b"ccc"], b"k", headers) == 3
    producer.produce("t", b"dddd", b"k", headers=headers)
    purgeAll(producer)
    copied = [("gateway-listener", b"lines"), ("gateway-peer", b"127.0.0.1:1")]
    assert fast.failures() == (
        [("t", b"k", value, copied, PURGED) for value in (b"a", b"bb", b"ccc")],
        0,
    )
    assert fast.failures() == ([], 0)
    assert reports.seen == [("_PURGE_QUEUE", "t", b"k", b"dddd")]


def test_noStatePerRecord(bound):
    """
    A record produced through the extension holds no Python object (no
    reference to the callback, unlike C{Producer.produce}'s): confluent-kafka's
    trampoline has nothing to call or free for it.
    """
    producer, reports, fast = bound
    before = sys.getrefcount(reports)
    assert fast.produceMany("t", [b"a", b"b"], None, None) == 2
    assert sys.getrefcount(reports) == before
    producer.produce("t", b"c")
    assert sys.getrefcount(reports) == before + 1


def test_cycleCollected():
    """
    The usual holder of the bound path is also the producer's C{on_delivery}
    (a bound method of the client): the collector frees the cycle, and the
    producer with it, when nothing else holds them.
    """
    needExtension()

    class Client:
        def delivered(self, error, message):
            pass

    client = Client()
    client.producer = offlineProducer(client.delivered)
    client.fast, _ = compat.accelerate(client.producer)
    assert client.fast.produceMany("t", [b"x"], None, None) == 1
    purgeAll(client.producer)
    gone = weakref.ref(client)
    del client
    gc.collect()
    assert gone() is None


def test_manyProducers():
    """
    Producers made and destroyed one after another, bound or not, each
    with records failed before and after unbinding: every one is watched
    on its own, and nothing is reported for a producer nobody drains.
    """
    needExtension()
    for i in range(20):
        producer = offlineProducer(Reports())
        if i % 2:
            fast, why = compat.accelerate(producer)
            assert why is None
            assert fast.produceMany("t", [b"%d" % i], None, None) == 1
            purgeAll(producer)
            assert fast.failures() == ([("t", None, b"%d" % i, [], PURGED)], 0)
            assert fast.produceMany("t", [b"after"], None, None) == 1
            del fast
        purgeAll(producer)
        del producer
        gc.collect()


def test_noKeyNoHeaders(bound):
    """
    A record without key or headers is produced as such.
    """
    producer, reports, fast = bound
    assert fast.produceMany("t", (b"x",), None, None) == 1
    purgeAll(producer)
    assert fast.failures() == ([("t", None, b"x", [], PURGED)], 0)


def test_stopsWhereTheQueueIsFull():
    """
    A full queue ends the call: it returns how many were taken, and the
    next record is refused by C{Producer.produce} too (the pure path then
    holds it); a record not taken is not reported as failed.
    """
    needExtension()
    reports = Reports()
    producer = offlineProducer(reports, **{"queue.buffering.max.messages": 2})
    fast, _ = compat.accelerate(producer)
    assert fast.produceMany("t", [b"1", b"2", b"3", b"4"], b"k", None) == 2
    with pytest.raises(BufferError):
        producer.produce("t", b"3", b"k")
    purgeAll(producer)
    records, lost = fast.failures()
    assert [value for _, _, value, _, _ in records] == [b"1", b"2"]
    assert reports.seen == []


def test_leavesWhatItCannotTake(bound):
    """
    A value that is not C{bytes}, headers it cannot encode, a topic that is
    not text: it takes nothing from there and raises nothing (the pure path
    judges those records).
    """
    producer, reports, fast = bound
    produceMany = fast.produceMany
    assert produceMany("t", [b"x", bytearray(b"y"), b"z"], None, None) == 1
    assert produceMany("t", [b"x"], None, [("h", 1)]) == 0
    assert produceMany("t", [b"x"], None, [("h",)]) == 0
    assert produceMany(b"t", [b"x"], None, None) == 0
    assert produceMany("t", [b"x"], "not bytes", None) == 0
    assert produceMany("\udc80", [b"x"], None, None) == 0
    purgeAll(producer)
    records, _ = fast.failures()
    assert [value for _, _, value, _, _ in records] == [b"x"]


SEQ = "gateway-seq"


class Tracker:
    """
    What an ack-mode stream is to the extension: an object it keeps alive
    while its records are in flight.
    """


def test_trackedFailuresByNumber(bound):
    """
    Records produced with C{produceTracked} that fail come back from
    C{tracked()}, in order, each with its tracker, its number and a copy
    carrying that number in its C{gateway-seq} header after the others;
    neither confluent-kafka's callback nor C{failures()} sees them.  Each
    record in flight holds one reference to its tracker, given back when
    its outcome is handed over.
    """
    producer, reports, fast = bound
    a, b = Tracker(), Tracker()
    before = sys.getrefcount(a)
    headers = [("gateway-listener", b"acks")]
    assert fast.produceTracked("t", [b"x", b"y"], b"k", headers, SEQ, a, 7) == 2
    assert fast.produceTracked("t", (b"z",), None, None, SEQ, b, 1) == 1
    assert sys.getrefcount(a) == before + 2
    purgeAll(producer)
    listener = ("gateway-listener", b"acks")
    assert fast.tracked() == (
        [
            (a, 7, 7, ("t", b"k", b"x", [listener, (SEQ, b"7")], PURGED)),
            (a, 8, 8, ("t", b"k", b"y", [listener, (SEQ, b"8")], PURGED)),
            (b, 1, 1, ("t", None, b"z", [(SEQ, b"1")], PURGED)),
        ],
        0,
    )
    assert sys.getrefcount(a) == before
    assert fast.tracked() == ([], 0)
    assert fast.failures() == ([], 0)
    assert reports.seen == []


def test_trackedNumbersPastInt32(bound):
    """
    Numbers are 64-bit: a session may start anywhere up to 2**63 - 1; past
    it the extension takes nothing (the pure path numbers on).
    """
    producer, _, fast = bound
    tracker = Tracker()
    first = 2**63 - 2
    assert fast.produceTracked("t", [b"x", b"y", b"z"], None, None, SEQ, tracker, first) == 2
    purgeAll(producer)
    outcomes, _ = fast.tracked()
    assert [(f, last, failure[3]) for _, f, last, failure in outcomes] == [
        (first, first, [(SEQ, b"%d" % first)]),
        (first + 1, first + 1, [(SEQ, b"%d" % (first + 1))]),
    ]


def test_trackedNumberDigits(bound):
    """
    The extension writes a record's number in decimal itself (not with
    C{snprintf}): every width, from 0 to 2**63 - 1, reads as Python's
    C{%d}.  A number below 0 is not taken (the pure path numbers it).
    """
    producer, _, fast = bound
    tracker = Tracker()
    starts = [0, 1, 9, 99, 999999999, 2**31 - 1, 2**32, 10**18 - 1, 2**63 - 2]
    for first in starts:
        assert fast.produceTracked("t", [b"a", b"b"], None, None, SEQ, tracker, first) == 2
    assert fast.produceTracked("t", [b"c"], None, None, SEQ, tracker, -1) == 0
    purgeAll(producer)
    outcomes, _ = fast.tracked()
    expected = [(n, [(SEQ, b"%d" % n)]) for first in starts for n in (first, first + 1)]
    assert [(f, failure[3]) for _, f, _, failure in outcomes] == expected


def test_trackedStopsWhereTheQueueIsFull():
    """
    A full queue ends the call: only the records taken hold a reference
    and come back.
    """
    needExtension()
    producer = offlineProducer(Reports(), **{"queue.buffering.max.messages": 2})
    fast, _ = compat.accelerate(producer)
    tracker = Tracker()
    before = sys.getrefcount(tracker)
    assert fast.produceTracked("t", [b"1", b"2", b"3"], b"k", None, SEQ, tracker, 1) == 2
    assert sys.getrefcount(tracker) == before + 2
    purgeAll(producer)
    outcomes, _ = fast.tracked()
    assert [(first, last) for _, first, last, _ in outcomes] == [(1, 1), (2, 2)]
    del outcomes
    assert sys.getrefcount(tracker) == before


def test_trackedLeavesWhatItCannotTake(bound):
    """
    What C{produceMany} leaves to the pure path, C{produceTracked} leaves
    too, taking no reference; a number that is not an integer raises.
    """
    producer, _, fast = bound
    tracker = Tracker()
    before = sys.getrefcount(tracker)
    tracked = fast.produceTracked
    assert tracked("t", [b"x", bytearray(b"y")], None, None, SEQ, tracker, 1) == 1
    assert tracked("t", [b"x"], None, [("h", 1)], SEQ, tracker, 2) == 0
    assert tracked("t", [b"x"], "not bytes", None, SEQ, tracker, 2) == 0
    assert tracked(b"t", [b"x"], None, None, SEQ, tracker, 2) == 0
    assert tracked("t", [b"x"], None, None, b"not text", tracker, 2) == 0
    with pytest.raises(TypeError):
        tracked("t", [b"x"], None, None, SEQ, tracker, "2")
    with pytest.raises(TypeError):
        tracked("t", [b"x"], None, None, SEQ)
    assert sys.getrefcount(tracker) == before + 1
    purgeAll(producer)
    outcomes, _ = fast.tracked()
    assert [failure[2] for _, _, _, failure in outcomes] == [b"x"]


def test_trackedOutlivingTheBinding():
    """
    The bound path released with tracked records whose outcomes were not
    handed over gives their references back; records reported after it is
    gone reach confluent-kafka's trampoline without their ticket (it would
    take a ticket for its own state), and reach nobody.
    """
    needExtension()
    reports = Reports()
    producer = offlineProducer(reports)
    fast, _ = compat.accelerate(producer)
    handed, late = Tracker(), Tracker()
    before = sys.getrefcount(handed)
    assert fast.produceTracked("t", [b"1", b"2"], None, None, SEQ, handed, 1) == 2
    purgeAll(producer)
    assert fast.produceTracked("t", [b"3"], None, None, SEQ, late, 1) == 1
    del fast
    gc.collect()
    assert sys.getrefcount(handed) == before
    purgeAll(producer)
    assert reports.seen == []


def test_refusesWhatItDoesNotWatch():
    """
    An object that is not a watched librdkafka handle, a producer created
    without the plugin, or one bound already: refused with a one-line reason
    (the pure path runs).
    """
    needExtension()
    module = extension()
    compat.plugin()
    with pytest.raises(ValueError, match="no handle$"):
        module.bind(0.0)
    with pytest.raises(ValueError, match="not created with it in plugin.library.paths"):
        module.bind(offlineProducer(Reports(), plugin=False))
    producer = offlineProducer(Reports())
    fast, _ = compat.accelerate(producer)
    assert compat.accelerate(producer) == (
        None,
        "the C extension cannot bind it (the producer is bound already)",
    )
    with pytest.raises(ValueError, match="prepared for .* already, not /elsewhere"):
        module.prepare("/elsewhere/librdkafka.so.1")


def _fresh(code):
    """
    Run C{code} in a new interpreter (nothing prepared yet) and return its
    output.
    """
    return subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()


def test_unprepared():
    """
    Before C{prepare()}: a library that is not loaded is refused, C{bind}
    refuses, and librdkafka refuses the plugin (the gateway then creates its
    producer without it).
    """
    needExtension()
    out = _fresh(
        "from gateway.compat import _confluent\n"
        "import confluent_kafka\n"
        "for call in (lambda: _confluent.prepare('/nonexistent/librdkafka.so.1'),\n"
        "             lambda: _confluent.bind(0.0),\n"
        "             lambda: confluent_kafka.Producer({'plugin.library.paths':"
        " _confluent.__file__})):\n"
        "    try:\n"
        "        call()\n"
        "    except Exception as e:\n"
        "        print(e)\n"
    )
    lines = out.splitlines()
    assert lines[0] == "/nonexistent/librdkafka.so.1 is not loaded"
    assert lines[1] == "prepare() was not called"
    assert "prepare() was not called" in lines[2]


def test_pureWhenAsked(monkeypatch):
    """
    C{GATEWAY_PURE_PYTHON} set: no plugin, and the reason says so.
    """
    monkeypatch.setenv(compat.PURE_PYTHON_ENV, "1")
    assert compat.plugin() == (None, "GATEWAY_PURE_PYTHON is set")


def test_notAProducer():
    """
    Anything but a confluent-kafka producer (a test's fake) runs the pure
    path.
    """
    expected = "not a confluent-kafka Producer (object)"
    if extension() is None:
        expected = "the C extension is not built"
    assert compat.accelerate(object()) == (None, expected)


def test_withPlugin():
    """
    The plugin goes after the user's own plugins, in a copy.
    """
    settings = {"acks": "all"}
    assert compat.withPlugin(settings, "/x.so") == {"acks": "all", compat.PLUGIN_PATHS: "/x.so"}
    assert settings == {"acks": "all"}
    assert compat.withPlugin({compat.PLUGIN_PATHS: "/a.so"}, "/x.so") == {
        compat.PLUGIN_PATHS: "/a.so;/x.so"
    }


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
