# -*- test-case-name: tests.compat.test_confluent_kafka -*-
"""
Everything the accelerated produce path relies on in confluent-kafka beyond
its public API, in one place: the optional C extension
C{gateway.compat._confluent} reaches the C{rd_kafka_t} of a
C{confluent_kafka.Producer} and produces a whole read's frames into it
through the librdkafka that confluent-kafka loaded.  It relies on:

 - the C{Handle} struct of confluent-kafka's C{cimpl} starting with
   C{PyObject_HEAD} then the C{rd_kafka_t *} (checked when binding: that
   handle must be one the extension's plugin watches, and librdkafka's
   C{rd_kafka_opaque()} of it the producer itself, which confluent-kafka
   sets it to);
 - its delivery report trampoline returning at once, without the GIL, for
   a record whose per-message opaque is C{NULL}: the records produced
   there carry none.  Their failures reach the gateway instead through
   librdkafka's public plugin and interceptor API: the extension is also a
   librdkafka plugin (L{plugin} puts it in C{plugin.library.paths}) whose
   C{on_acknowledgement} interceptor copies each failed one for
   C{failures()};
 - for ack mode's tracked records (C{produceTracked}), a per-message
   opaque tagged with its low bit: confluent-kafka's own per-record states
   are allocated by C{malloc}, so theirs never has it, and the interceptor
   (which librdkafka calls for every record before it queues the record's
   report, in C{rd_kafka_dr_msgq0}) sets it back to C{NULL}, so that the
   trampoline never sees it;
 - one librdkafka in the process, found in C{/proc/self/maps} (the wheel
   bundles it as C{confluent_kafka.libs/librdkafka-*.so*}), opened with
   C{RTLD_NOLOAD} so that no second copy is loaded.

Each entry was checked against confluent-kafka L{CHECKED} (its 2.15.0 and
2.16.1 sources; the early return for a C{NULL} opaque against the 2.15.0
source and, on 2.16.1, by running every record of the test suite through
it); C{tests/compat/test_confluent_kafka.py} checks each against the
installed one.  When a check fails, or the extension was not built, or
C{GATEWAY_PURE_PYTHON} is set, L{plugin} or L{accelerate} says why and the
gateway runs the pure-Python path (the reference).
"""

import os

__all__ = [
    "CHECKED",
    "C_EXTENSION",
    "PLUGIN_PATHS",
    "PURE_PYTHON_ENV",
    "accelerate",
    "librdkafkaPath",
    "plugin",
    "withPlugin",
]

#: The confluent-kafka version every entry above was checked against.
CHECKED = "2.16.1"

#: Set (to anything but C{""} or C{0}) to run the pure-Python path.
PURE_PYTHON_ENV = "GATEWAY_PURE_PYTHON"

#: What the gateway calls the accelerated path (its start line, /status.json).
C_EXTENSION = "C extension"

#: librdkafka's property naming the plugins it loads.
PLUGIN_PATHS = "plugin.library.paths"


def librdkafkaPath(maps="/proc/self/maps"):
    """
    The file of the librdkafka this process loaded: confluent-kafka's own
    (a path beside its package) if loaded, else the only one.

    :return: a path, or L{None} when there is none or several and none of
        them is confluent-kafka's.
    """
    try:
        with open(maps) as f:
            paths = {line.split(None, 5)[-1].strip() for line in f if "librdkafka" in line}
    except OSError:
        return None
    paths = {p for p in paths if p.startswith("/") and "librdkafka" in os.path.basename(p)}
    own = sorted(p for p in paths if "/confluent_kafka" in p)
    if own:
        return own[0]
    if len(paths) == 1:
        return paths.pop()
    return None


def _modules():
    """
    :return: C{(extension, confluent-kafka's cimpl, None)} (importing
        confluent-kafka loads its librdkafka), or C{(None, None, reason)}.
    """
    try:
        from gateway.compat import _confluent
    except ImportError:
        return None, None, "the C extension is not built"
    try:
        from confluent_kafka import cimpl
    except ImportError as e:
        return None, None, f"confluent-kafka is not importable ({e})"
    return _confluent, cimpl, None


def plugin():
    """
    Before a producer is created: the extension as a librdkafka plugin.

    :return: C{(path, None)}, the file to add to the producer's
        L{PLUGIN_PATHS} (L{withPlugin}); or C{(None, reason)}: why the
        pure-Python path runs.
    """
    if os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0"):
        return None, f"{PURE_PYTHON_ENV} is set"
    _confluent, _, why = _modules()
    if why is not None:
        return None, why
    path = librdkafkaPath()
    if path is None:
        return None, "confluent-kafka's librdkafka was not found in /proc/self/maps"
    try:
        return _confluent.prepare(path), None
    except ValueError as e:
        return None, f"confluent-kafka's librdkafka does not match ({e})"


def withPlugin(settings, path):
    """
    :return: a copy of the producer's C{settings} whose L{PLUGIN_PATHS}
        also holds C{path} (after the user's own plugins, if any).
    """
    settings = dict(settings)
    given = settings.get(PLUGIN_PATHS)
    settings[PLUGIN_PATHS] = f"{given};{path}" if given else path
    return settings


def accelerate(producer):
    """
    Bind the accelerated path to a producer created with L{withPlugin}.

    :param producer: a C{confluent_kafka.Producer}.
    :return: C{(fast, None)}, where C{fast.produceMany(topic, values, key,
        headers)} produces C{values} in order and returns how many it took
        (it stops at the first it does not take, whatever the reason, and
        raises nothing), and C{fast.failures()} returns C{(records, lost)}:
        the records it took that failed since the last call, each as
        C{(topic, key, value, headers, librdkafka error code)}, and how many
        more failed that could not be copied; C{fast.produceTracked} and
        C{fast.tracked()} do the same for ack mode's records, numbered, with
        every outcome; or C{(None, reason)}: why the pure-Python path runs.
    """
    _confluent, cimpl, why = _modules()
    if why is not None:
        return None, why
    if not isinstance(producer, cimpl.Producer):
        return None, f"not a confluent-kafka Producer ({type(producer).__name__})"
    try:
        return _confluent.bind(producer), None
    except ValueError as e:
        return None, f"the C extension cannot bind it ({e})"
