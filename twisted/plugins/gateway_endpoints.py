# -*- test-case-name: tests.server.test_reuseport -*-
"""
The C{reuseport:} server endpoint description, for
L{serverFromString<twisted.internet.endpoints.serverFromString>} and so for
every C{--listen} and C{twistd} C{--port}-style option.  Importing this
module imports no reactor.
"""

from gateway.server.reuseport import ReusePortParser

reuseportEndpointParser = ReusePortParser()
