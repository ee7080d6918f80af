# A gateway configured in Python: run with `twistd -ny docs/examples/gateway.tac`.
#
# Two listeners with different framings share the process's one Kafka
# producer.  Settings come from the environment so the same file serves a
# laptop and a test; edit the defaults below for your own deployment.

import os

from twisted.application import service
from twisted.internet import reactor

from gateway.errors import StartupGuard, installHook, oneLine
from gateway.service import GatewayService, exitWithStatus

# A failure to start (a setting refused below, a port in use) is one line on
# standard error and exit status 1, as with `twistd gateway`, not a
# traceback (GATEWAY_DEBUG=1 brings tracebacks back): the hook and the guard
# for ports, oneLine() for the settings.
installHook()

env = os.environ.get

application = service.Application("kafka-gateway")

with oneLine():
    gateway = GatewayService(
        topic=env("GATEWAY_TOPIC", "gateway"),
        bootstrapServers=env("GATEWAY_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        kafkaOptions={"linger.ms": "5", "client.id": "kafka-gateway-tac"},
        maxMessageSize=64 * 1024,
    )
    # Devices and scripts sending one message per line.
    gateway.addListener(
        "lines",
        env("GATEWAY_LINES_ENDPOINT", "tcp:9000:interface=127.0.0.1"),
        name="devices",
    )
    # Services sending binary messages, each after a 4-byte big-endian length,
    # allowed up to 256 KiB.
    gateway.addListener(
        "length-prefixed",
        env("GATEWAY_LENGTH_PREFIXED_ENDPOINT", "tcp:9001:interface=127.0.0.1"),
        name="services",
        maxMessageSize=256 * 1024,
    )
guard = StartupGuard()
gateway.setServiceParent(guard)
guard.setServiceParent(application)
# A stop that lost records (the spool or dead-letter file could not be
# written) exits with status 3, as `twistd gateway` does.
exitWithStatus(reactor, gateway)
