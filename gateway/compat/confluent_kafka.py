# -*- test-case-name: tests.compat.test_confluent_kafka -*-
"""
Everything the accelerated produce path relies on in confluent-kafka beyond
its public API, in one place: the optional C extension
C{gateway.compat._confluent} reaches the C{rd_kafka_t} of a
C{confluent_kafka.Producer} and produces a whole read's frames into it
through the librdkafka that confluent-kafka loaded.  It relies on:

 - the C{Handle} struct of confluent-kafka's C{cimpl} starting with
   C{PyObject_HEAD} then the C{rd_kafka_t *} (checked when binding:
   librdkafka's C{rd_kafka_opaque()} of that handle must be the producer
   itself, which confluent-kafka sets it to);
 - its per-message opaque, C{struct Producer_msgstate {Handle *self;
   PyObject *dr_cb;}}, allocated with C{calloc}, which its delivery report
   trampoline calls C{dr_cb} with (failures only, under
   C{delivery.report.only.error}) and then frees: so a record produced here
   is reported exactly as one produced by C{Producer.produce};
 - one librdkafka in the process, found in C{/proc/self/maps} (the wheel
   bundles it as C{confluent_kafka.libs/librdkafka-*.so*}), opened with
   C{RTLD_NOLOAD} so that no second copy is loaded.

Each entry was checked against confluent-kafka L{CHECKED} (its 2.15.0 and
2.16.1 sources); C{tests/compat/test_confluent_kafka.py} checks each against the
installed one.  When a check fails, or the extension was not built, or
C{GATEWAY_PURE_PYTHON} is set, L{accelerate} says why and the gateway runs
the pure-Python path (the reference).
"""

import os

__all__ = ["CHECKED", "C_EXTENSION", "PURE_PYTHON_ENV", "accelerate", "librdkafkaPath"]

#: The confluent-kafka version every entry above was checked against.
CHECKED = "2.16.1"

#: Set (to anything but C{""} or C{0}) to run the pure-Python path.
PURE_PYTHON_ENV = "GATEWAY_PURE_PYTHON"

#: What L{accelerate} returns as its path when it binds.
C_EXTENSION = "C extension"


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


def accelerate(producer, delivery):
    """
    Bind the accelerated path to a producer.

    :param producer: a C{confluent_kafka.Producer}.
    :param delivery: the C{on_delivery} callable it was created with: the
        records produced here are reported to it.
    :return: C{(produceMany, None)}, where
        C{produceMany(topic, values, key, headers)} produces C{values} in
        order and returns how many it took (it stops at the first it does
        not take, whatever the reason, and raises nothing); or
        C{(None, reason)}: why the pure-Python path runs.
    """
    if os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0"):
        return None, f"{PURE_PYTHON_ENV} is set"
    try:
        from gateway.compat import _confluent
    except ImportError:
        return None, "the C extension is not built"
    try:
        from confluent_kafka import cimpl
    except ImportError as e:
        return None, f"confluent-kafka is not importable ({e})"
    if not isinstance(producer, cimpl.Producer):
        return None, f"not a confluent-kafka Producer ({type(producer).__name__})"
    path = librdkafkaPath()
    if path is None:
        return None, "confluent-kafka's librdkafka was not found in /proc/self/maps"
    try:
        fast = _confluent.bind(producer, path, delivery)
    except ValueError as e:
        return None, f"confluent-kafka's layout does not match ({e})"
    return fast.produceMany, None
