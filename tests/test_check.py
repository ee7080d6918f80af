# -*- test-case-name: tests.test_check -*-
"""
Tests for L{gateway.check}, the validate command, without a broker (the
real one is in C{tests/integration/test_check_kafka.py}).
"""

import io
import os
from types import SimpleNamespace

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AclOperation
from twisted.trial.unittest import SynchronousTestCase

from gateway.check import main, runCheck, runTacCheck
from gateway.settings import SettingsCheck, checkSettings
from tests.support.files import temporaryDirectory


def settingsFor(directory, *listeners, **given):
    """
    Checked settings with the spool and dead-letter file in C{directory},
    paths left to the check as C{--check} leaves them.
    """
    given.setdefault("spoolPath", os.path.join(directory, "spool.jsonl"))
    given.setdefault("deadLetterPath", os.path.join(directory, "dead.jsonl"))
    return checkSettings(
        [{"framing": "lines", "endpoint": e} for e in listeners or ["tcp:0"]],
        topic="events",
        check=SettingsCheck(paths=False),
        **given,
    )


class Done:
    """
    A future that has its result (or exception) already.
    """

    def __init__(self, value):
        self.value = value

    def result(self, timeout=None):
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


def fakeAdmin(cluster, topic):
    """
    An C{AdminClient} stand-in answering C{describe_cluster} with
    C{cluster} and C{describe_topics} with C{topic} (either may be an
    exception; C{topic} may also map names to answers), remembering its
    configuration and the topics asked for.
    """

    class Admin:
        configs = []
        asked = []

        def __init__(self, config):
            self.configs.append(config)

        def describe_cluster(self, request_timeout):
            return Done(cluster)

        def describe_topics(self, topics, request_timeout, include_authorized_operations):
            self.asked.append(list(topics.topic_names))
            answers = topic if isinstance(topic, dict) else {}
            return {name: Done(answers.get(name, topic)) for name in topics.topic_names}

    return Admin


#: A topic template with a field: chosen per connection.
TEMPLATE = "d.{peer_host}"

CLUSTER = SimpleNamespace(nodes=[SimpleNamespace(host="k1", port=9092)])


def topicWith(operations):
    return SimpleNamespace(partitions=[0, 1, 2], authorized_operations=operations)


class RunCheckTests(SynchronousTestCase):
    """
    L{runCheck}.
    """

    def setUp(self):
        self.directory = temporaryDirectory(self)
        self.out = io.StringIO()

    def lines(self):
        return self.out.getvalue().splitlines()

    def test_passes(self):
        """
        Good settings: a line per thing checked, C{check passed}, status 0.
        """
        settings = settingsFor(self.directory, "tcp:9000", "unix:" + self.directory + "/g.sock")
        self.assertEqual(runCheck(settings, out=self.out), 0)
        lines = self.lines()
        self.assertTrue(lines[0].startswith("ok    settings: topic 'events', 2 listeners"))
        self.assertIn("ok    listener lines=tcp:9000", lines)
        self.assertIn(f"ok    --spool {self.directory}/spool.jsonl: writable", lines)
        self.assertIn(f"ok    --listen lines=unix:{self.directory}/g.sock: writable", lines)
        self.assertEqual(lines[-1], "check passed")

    def test_missingDirectories(self):
        """
        A spool or C{unix:} socket in a directory that does not exist fails
        the check, naming the option and the directory.
        """
        missing = os.path.join(self.directory, "missing")
        settings = settingsFor(
            self.directory, "unix:" + missing + "/g.sock", spoolPath=missing + "/s.jsonl"
        )
        self.assertEqual(runCheck(settings, out=self.out), 1)
        lines = self.lines()
        self.assertIn(
            f"FAIL  --spool {missing}/s.jsonl: directory {missing} does not exist", lines
        )
        self.assertIn(
            f"FAIL  --listen lines=unix:{missing}/g.sock: directory {missing} does not exist",
            lines,
        )
        self.assertEqual(lines[-1], "check failed: 2 problems")

    def test_nothingToWrite(self):
        """
        C{--spool none}: nothing to check.
        """
        settings = settingsFor(self.directory, spoolPath=None)
        self.assertEqual(runCheck(settings, out=self.out), 0)
        self.assertIn("ok    --spool None: nothing to write", self.lines())

    def test_kafkaWritable(self):
        """
        With C{kafka}: the brokers that answer, the topic's partitions, and
        that this client may write; the admin client gets the producer's
        configuration.
        """
        settings = settingsFor(self.directory, kafkaOptions={"client.id": "gw"})
        admin = fakeAdmin(CLUSTER, topicWith([AclOperation.READ, AclOperation.WRITE]))
        self.assertEqual(runCheck(settings, kafka=True, out=self.out, admin=admin), 0)
        lines = self.lines()
        self.assertIn("ok    kafka 127.0.0.1:9092: brokers k1:9092 answer", lines)
        self.assertIn("ok    kafka topic 'events': exists, 3 partition(s)", lines)
        self.assertIn("ok    kafka topic 'events': this client may write", lines)
        self.assertEqual(admin.configs[0]["client.id"], "gw")

    def test_kafkaNotWritable(self):
        """
        A topic this client may only read fails the check.
        """
        settings = settingsFor(self.directory)
        admin = fakeAdmin(CLUSTER, topicWith([AclOperation.READ, AclOperation.DESCRIBE]))
        self.assertEqual(runCheck(settings, kafka=True, out=self.out, admin=admin), 1)
        self.assertIn("FAIL  kafka topic 'events': this client may not write to it", self.lines())

    def test_kafkaTopicMissing(self):
        """
        A topic that does not exist fails the check with Kafka's reason.
        """
        settings = settingsFor(self.directory)
        missing = KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, "no such topic"))
        admin = fakeAdmin(CLUSTER, missing)
        self.assertEqual(runCheck(settings, kafka=True, out=self.out, admin=admin), 1)
        self.assertIn(
            "FAIL  kafka topic 'events': no such topic (UNKNOWN_TOPIC_OR_PART)", self.lines()
        )

    def test_kafkaEveryListenerTopic(self):
        """
        Every fixed topic is checked, once: each listener's C{topic=}, and
        C{--topic} for a listener naming none; a topic chosen per
        connection is named as not checked. A missing topic does not hide
        the others' lines.
        """
        settings = checkSettings(
            [
                {"framing": "lines", "endpoint": "tcp:9000", "options": {"topic": "logs"}},
                {"framing": "lines", "endpoint": "tcp:9001"},
                {"framing": "lines", "endpoint": "tcp:9002", "options": {"topic": "logs"}},
                {"framing": "lines", "endpoint": "tcp:9003", "options": {"topic": TEMPLATE}},
            ],
            topic="events",
            check=SettingsCheck(paths=False),
            spoolPath=None,
            deadLetterPath=None,
        )
        missing = KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, "no such topic"))
        writable = topicWith([AclOperation.WRITE])
        admin = fakeAdmin(CLUSTER, {"logs": missing, "events": writable})
        self.assertEqual(runCheck(settings, kafka=True, out=self.out, admin=admin), 1)
        self.assertEqual(admin.asked, [["logs", "events"]])
        lines = self.lines()
        self.assertIn("FAIL  kafka topic 'logs': no such topic (UNKNOWN_TOPIC_OR_PART)", lines)
        self.assertIn("ok    kafka topic 'events': this client may write", lines)
        self.assertIn(
            "ok    listener lines=tcp:9003: topic chosen per connection, not checked", lines
        )

    def test_logFile(self):
        """
        twistd's log file is checked with the other paths when twistd's
        options are given.
        """
        settings = settingsFor(self.directory)
        missing = os.path.join(self.directory, "gone", "twistd.log")
        twistd = {"logfile": missing, "nodaemon": True, "syslog": False}
        self.assertEqual(runCheck(settings, out=self.out, twistd=twistd), 1)
        self.assertIn(
            f"FAIL  --logfile {missing}: directory {os.path.dirname(missing)} does not exist",
            self.lines(),
        )

    def test_kafkaDown(self):
        """
        No broker answering fails the check at the first request.
        """
        settings = settingsFor(self.directory)
        down = KafkaException(KafkaError(KafkaError._TIMED_OUT, "timed out"))
        admin = fakeAdmin(down, topicWith(None))
        self.assertEqual(runCheck(settings, kafka=True, out=self.out, admin=admin), 1)
        self.assertIn(
            "FAIL  kafka 127.0.0.1:9092: no answer (timed out (_TIMED_OUT))", self.lines()
        )


TAC = """
from twisted.application import service
from gateway.service import GatewayService

application = service.Application("gateway")
gateway = GatewayService(topic="events", spoolPath={spool!r}, deadLetterPath=None)
gateway.addListener("lines", "tcp:9000")
gateway.setServiceParent(application)
"""


class TacTests(SynchronousTestCase):
    """
    L{runTacCheck} and the C{gateway-check} command.
    """

    def setUp(self):
        self.directory = temporaryDirectory(self)
        self.out = io.StringIO()

    def tac(self, text):
        path = os.path.join(self.directory, "gateway.tac")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_good(self):
        """
        A C{.tac} file's gateway is checked like the command line's.
        """
        path = self.tac(TAC.format(spool=os.path.join(self.directory, "s.jsonl")))
        self.assertEqual(runTacCheck(path, out=self.out), 0)
        lines = self.out.getvalue().splitlines()
        self.assertIn("ok    listener lines=tcp:9000", lines)
        self.assertEqual(lines[-1], "check passed")

    def test_badPath(self):
        """
        A C{.tac} file whose spool directory is missing fails: its
        C{GatewayService} refuses the path as it is built.
        """
        path = self.tac(TAC.format(spool="/nonexistent-gateway/s.jsonl"))
        self.assertEqual(main([path], out=self.out), 1)
        self.assertIn(
            f"FAIL  {path}: --spool /nonexistent-gateway/s.jsonl: cannot write there: "
            "directory /nonexistent-gateway does not exist",
            self.out.getvalue().splitlines(),
        )

    def test_badSetting(self):
        """
        A C{.tac} file that raises (a setting its gateway refuses) fails in
        one line.
        """
        path = self.tac(TAC.format(spool=None).replace("tcp:9000", "tcp:x"))
        self.assertEqual(runTacCheck(path, out=self.out), 1)
        [line, summary] = self.out.getvalue().splitlines()
        self.assertTrue(line.startswith(f"FAIL  {path}: malformed endpoint 'tcp:x'"), line)

    def test_noGateway(self):
        """
        A C{.tac} file without a gateway fails.
        """
        path = self.tac(
            "from twisted.application import service\napplication = service.Application('x')\n"
        )
        self.assertEqual(runTacCheck(path, out=self.out), 1)
        self.assertIn("builds no GatewayService", self.out.getvalue())

    def test_usage(self):
        """
        C{gateway-check} takes one file.
        """
        self.assertEqual(main([], out=self.out), 1)
