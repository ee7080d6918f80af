# -*- test-case-name: tests.ops.test_http -*-
"""
The HTTP service: the gateway's HTTP site (L{gateway.ops.web.buildSite}) on
its own endpoint, bound like the listeners (at start, raising when it
cannot).
"""

from twisted.application.service import Service
from twisted.logger import Logger

from gateway.addresses import formatAddress
from gateway.ops.web import buildSite
from gateway.server.listener import listenNow

__all__ = ["HTTPService"]


class HTTPService(Service):
    """
    The gateway's HTTP endpoints (L{gateway.ops.web.buildSite}) on their own
    endpoint, bound like the listeners.

    :ivar port: the listening port once bound.
    """

    name = "http"
    log = Logger()

    def __init__(self, gateway, endpoint, description):
        """
        :param gateway: the L{gateway.service.GatewayService} to serve.
        :param endpoint: an L{IStreamServerEndpoint}.
        :param description: the endpoint's description.
        """
        self.gateway = gateway
        self.endpoint = endpoint
        self.description = description
        self.port = None

    def privilegedStartService(self):
        """
        Bind now and raise if binding fails.
        """
        Service.privilegedStartService(self)
        self.port = listenNow(self.endpoint, buildSite(self.gateway), self.description)
        self.log.info(
            "http listening on {address}",
            address=formatAddress(self.port.getHost()),
            endpoint=self.description,
        )

    def startService(self):
        if self.port is None:
            self.privilegedStartService()
        Service.startService(self)

    def stopService(self):
        Service.stopService(self)
        port, self.port = self.port, None
        if port is not None:
            return port.stopListening()
        return None
