# -*- test-case-name: tests.integration.test_devkafka -*-
"""
Real Apache Kafka brokers for the integration tests.

The jars are shared with the command line (``$GATEWAY_DEVKAFKA_HOME`` or
``<rootdir>/.devkafka``, fetched on first use) so a fresh machine needs only
``pytest``; each session's data lives in pytest's temporary folder. A broker
that cannot start fails the tests that need it: they are never skipped.
"""

import os

import pytest

from gateway.devkafka import DevKafka


def devkafkaHome(config):
    """
    The jar cache the fixtures share with ``python -m gateway.devkafka``.

    :param config: the pytest config; its rootdir stands for ``.``, so the
        cache is the same wherever pytest is started from.
    """
    return os.environ.get("GATEWAY_DEVKAFKA_HOME") or config.rootpath / ".devkafka"


def _broker(request, tmpPathFactory, version, name):
    broker = DevKafka(
        version,
        home=devkafkaHome(request.config),
        name=name,
        runRoot=tmpPathFactory.mktemp("devkafka"),
    )
    try:
        broker.start(timeout=120.0)
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka(request, tmp_path_factory):
    """
    A Kafka 4.x broker for the whole session (``kafka.bootstrap``).
    """
    yield from _broker(request, tmp_path_factory, "4", "pytest-4")


@pytest.fixture(scope="session")
def kafka39(request, tmp_path_factory):
    """
    A Kafka 3.9 broker (for the pykafka backend), started on first use.
    """
    yield from _broker(request, tmp_path_factory, "3.9", "pytest-3.9")
