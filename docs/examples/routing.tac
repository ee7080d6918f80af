# A gateway routing three listeners to their own topics through one producer:
# run with `twistd -ny docs/examples/routing.tac` (docs/routing.md).
#
# Settings come from the environment so the same file serves a laptop and a
# test; edit the defaults below for your own deployment.

import os

from twisted.application import service

from gateway.service import GatewayService

env = os.environ.get

application = service.Application("kafka-gateway")

# No default topic: every listener names its own.
gateway = GatewayService(
    topic=None,
    bootstrapServers=env("GATEWAY_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
    # /metrics and /status.json count messages and bytes per topic.
    http=env("GATEWAY_HTTP", "tcp:8080:interface=127.0.0.1"),
)
# Device telemetry: one topic per device host, every connection of a host on
# one partition (in order across its reconnections).
gateway.addListener(
    "lines",
    env("GATEWAY_TELEMETRY_ENDPOINT", "tcp:9000:interface=127.0.0.1"),
    name="telemetry",
    options={"topic": env("GATEWAY_TELEMETRY_TOPIC", "telemetry.{peer_host}"), "key": "peer-host"},
)
# Application logs: no key, so librdkafka's sticky partitioner fills
# batches (no order between records).
gateway.addListener(
    "lines",
    env("GATEWAY_LOGS_ENDPOINT", "tcp:9001:interface=127.0.0.1"),
    name="logs",
    options={"topic": env("GATEWAY_LOGS_TOPIC", "logs"), "key": "none"},
)
# JSON lines split by their "type" field (pip install
# ./plugins/gateway-routing-jsontype).
gateway.addListener(
    "lines",
    env("GATEWAY_JSON_ENDPOINT", "tcp:9002:interface=127.0.0.1"),
    name="json",
    options={"routing": "json-type"},
)
gateway.setServiceParent(application)
