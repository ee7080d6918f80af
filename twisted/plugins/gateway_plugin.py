# -*- test-case-name: tests.test_packaging -*-
"""
The C{twistd gateway} subcommand.  Only a lazy L{ServiceMaker}: C{gateway.tap}
is imported when the subcommand is used, not while twistd scans plugins.
"""

from twisted.application.service import ServiceMaker

gateway = ServiceMaker(
    "Kafka gateway",
    "gateway.tap",
    "Accept TCP clients, frame their byte streams into messages and publish "
    "them to Kafka through one shared producer.",
    "gateway",
)
