# -*- test-case-name: tests.kafka.test_topics -*-
"""
Tests for L{gateway.kafka.topics}: which wanted topics count as missing
(the cluster is asked in tests/integration/test_routing_kafka.py).
"""

from twisted.trial.unittest import SynchronousTestCase

from gateway.kafka import topics


class MissingTopicsTests(SynchronousTestCase):
    """
    L{topics.missingTopics}.
    """

    def answer(self, found, autoCreate):
        self.patch(topics, "clusterTopics", lambda config, timeout: (set(found), autoCreate))

    def test_clusterDoesNotCreate(self):
        """
        A cluster that does not create topics: the wanted ones it lacks.
        """
        self.answer({"a"}, False)
        self.assertEqual(topics.missingTopics({}, {"a", "c", "b"}), ["b", "c"])

    def test_producerDoesNotCreate(self):
        """
        A producer with C{allow.auto.create.topics=false} never gets them
        created, whatever the cluster's setting.
        """
        self.answer({"a"}, True)
        config = {"allow.auto.create.topics": "false"}
        self.assertEqual(topics.missingTopics(config, {"a", "b"}), ["b"])

    def test_created(self):
        """
        A cluster that creates topics, or whose setting is unknown: none
        missing.
        """
        for autoCreate in (True, None):
            self.answer(set(), autoCreate)
            self.assertEqual(topics.missingTopics({}, {"a"}), [])
