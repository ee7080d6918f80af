# -*- test-case-name: tests.server.test_tls -*-
"""
TLS listeners: any listener given C{tls-cert} speaks TLS through Twisted's
own memory-BIO TLS (L{twisted.protocols.tls}) wrapped around its protocol
factory, whatever its endpoint (C{tcp:}, C{reuseport:} across workers,
C{haproxy:}, whose PROXY header comes before the TLS bytes).  C{tls-client-ca}
makes it mutual: a client must present a certificate issued by that CA, or
the handshake fails and the connection is closed.

Options, not an endpoint of their own, because the listener must own its
context to reload it and to wrap the endpoints the gateway already has.

Defaults: TLS 1.2 at least, renegotiation refused, server cipher
preference (Twisted's L{CertificateOptions}).  A listener's connections
open their message stream when the handshake completes
(L{gateway.server.handshake}), so the verified client certificate's subject
(RFC 4514, e.g. C{CN=host,O=Example}) goes into every record's
C{gateway-client-cert} header.

C{SIGHUP} reloads every listener's certificate, key, chain and CA files:
connections already open keep the context they were made with; new ones
get the new files.  Files that no longer load are logged and the old
context is kept.
"""

import signal
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from OpenSSL import SSL, crypto
from twisted.application.service import Service
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.internet.ssl import CertificateOptions, TLSVersion
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from gateway.framing.options import FramingOption, OptionError, choice

__all__ = [
    "TLS_OPTIONS",
    "CertificateReloader",
    "ServerTLS",
    "TLSSettings",
    "splitTLSOptions",
    "tlsFactory",
]

_VERSIONS = {"1.2": TLSVersion.TLSv1_2, "1.3": TLSVersion.TLSv1_3}


def _path(value):
    """
    A file name, not empty.
    """
    value = str(value).strip()
    if not value:
        raise ValueError("must be a file name")
    return value


#: The listener options of TLS, for every framing.
TLS_OPTIONS = (
    FramingOption(
        "tls-cert",
        _path,
        None,
        "PEM certificate: the listener speaks TLS (intermediates may follow it in the same file)",
        "file",
    ),
    FramingOption(
        "tls-key",
        _path,
        None,
        "PEM private key, unencrypted (default: in the tls-cert file)",
        "file",
    ),
    FramingOption("tls-chain", _path, None, "PEM intermediate certificates to send", "file"),
    FramingOption(
        "tls-client-ca",
        _path,
        None,
        "PEM CA certificates: mutual TLS, clients without a certificate they issued are refused",
        "file",
    ),
    FramingOption(
        "tls-min-version", choice(*_VERSIONS), "1.2", "the oldest TLS version accepted", "1.2|1.3"
    ),
)

_DECLARED = {option.name: option for option in TLS_OPTIONS}


def splitTLSOptions(given):
    """
    Separate a listener's TLS options from the others.

    :return: C{(tlsOptions, otherOptions)}, two L{dict}s.
    """
    tls, other = {}, {}
    for name, value in given.items():
        (tls if name in _DECLARED else other)[name] = value
    return tls, other


def _read(option, path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise OptionError(f"listener option {option}={path!r}: {e.strerror or e}") from e


def _certificates(option, path):
    """
    :return: the certificates of a PEM file.
    """
    data = _read(option, path)
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise OptionError(
            f"listener option {option}={path!r}: no PEM certificate in it ({e})"
        ) from e
    return certificates


def _privateKey(option, path, hint=""):
    data = _read(option, path)
    try:
        key = load_pem_private_key(data, password=None)
    except (TypeError, ValueError) as e:
        raise OptionError(
            f"listener option {option}={path!r}: no unencrypted PEM private key in it{hint} ({e})"
        ) from e
    return key


@dataclass(frozen=True)
class TLSSettings:
    """
    One listener's TLS files, checked.

    :ivar cert: the certificate file (intermediates may follow).
    :ivar key: the private key file.
    :ivar chain: an intermediates file, or L{None}.
    :ivar clientCA: the CA file verifying client certificates (mutual TLS),
        or L{None}.
    :ivar minVersion: C{"1.2"} or C{"1.3"}.
    """

    cert: str
    key: str
    chain: str = None
    clientCA: str = None
    minVersion: str = "1.2"

    @classmethod
    def fromOptions(cls, given, endpoint=""):
        """
        Check a listener's TLS options and load their files once, so a
        missing file or a key that does not match is refused at start.

        :param given: TLS option name to value.
        :param endpoint: the listener's endpoint description: not one that
            speaks TLS itself (C{ssl:}), which would encrypt twice.
        :return: the settings, or L{None} when no TLS option is given.
        :raises OptionError: naming the option.
        """
        if not given:
            return None
        kind = endpoint.strip().lower().removeprefix("haproxy:").partition(":")[0]
        if kind in ("ssl", "tls"):
            raise OptionError(
                f"listener option {sorted(given)[0]} on the {kind}: endpoint "
                f"{endpoint!r} would encrypt twice; listen on tcp: (or reuseport:) instead"
            )
        values = {}
        for name, option in _DECLARED.items():
            value = given.get(name)
            if value is None:
                values[name] = option.default
                continue
            try:
                values[name] = option.coerce(value)
            except (TypeError, ValueError) as e:
                raise OptionError(f"listener option {name}={value!r}: {e}") from e
        if values["tls-cert"] is None:
            raise OptionError(
                f"listener option {sorted(given)[0]} needs tls-cert=FILE "
                "(the listener's PEM certificate)"
            )
        settings = cls(
            cert=values["tls-cert"],
            key=values["tls-key"] or values["tls-cert"],
            chain=values["tls-chain"],
            clientCA=values["tls-client-ca"],
            minVersion=values["tls-min-version"],
        )
        settings.context()
        return settings

    @property
    def mutual(self):
        """
        Whether clients must present a certificate.
        """
        return self.clientCA is not None

    def context(self):
        """
        Read the files and make a server context from them.

        :rtype: L{OpenSSL.SSL.Context}
        :raises OptionError: naming the option whose file is wrong.
        """
        leaf, *chain = _certificates("tls-cert", self.cert)
        if self.chain is not None:
            chain += _certificates("tls-chain", self.chain)
        if self.key == self.cert:
            # No tls-key given: the key must be in the certificate's file.
            key = _privateKey("tls-cert", self.key, " (or give tls-key=FILE)")
        else:
            key = _privateKey("tls-key", self.key)
        mutual = {}
        if self.clientCA is not None:
            mutual = {
                "verify": True,
                # Twisted's trust store takes pyOpenSSL certificates only.
                "caCerts": [
                    crypto.X509.from_cryptography(certificate)
                    for certificate in _certificates("tls-client-ca", self.clientCA)
                ],
                "requireCertificate": True,
            }
        try:
            options = CertificateOptions(
                privateKey=key,
                certificate=leaf,
                extraCertChain=chain,
                raiseMinimumTo=_VERSIONS[self.minVersion],
                **mutual,
            )
            context = options.getContext()
        except SSL.Error as e:
            raise OptionError(
                f"listener option tls-key={self.key!r} does not match tls-cert={self.cert!r} ({e})"
            ) from e
        context.set_options(SSL.OP_NO_RENEGOTIATION)
        return context


@implementer(IOpenSSLServerConnectionCreator)
class ServerTLS:
    """
    A listener's TLS: makes each connection's TLS state from the current
    context, which L{reload} replaces (connections keep theirs).

    :ivar settings: the L{TLSSettings}.
    :ivar reloads: successful reloads so far.
    """

    log = Logger()

    def __init__(self, name, settings):
        """
        :param name: the listener's name, for the log.
        :param settings: its L{TLSSettings}.
        """
        self.name = name
        self.settings = settings
        self.reloads = 0
        self._context = settings.context()

    def serverConnectionForTLS(self, tlsProtocol):
        """
        See L{IOpenSSLServerConnectionCreator.serverConnectionForTLS}.
        """
        return SSL.Connection(self._context, None)

    def reload(self):
        """
        Read the files again; new connections use them.  Files that do not
        load are logged, and the current context is kept.

        :return: whether the new files are in use.
        """
        try:
            self._context = self.settings.context()
        except OptionError as e:
            self.log.error(
                "{listener}: TLS files not reloaded, the old ones stay in use: {error}",
                listener=self.name,
                error=str(e),
            )
            return False
        self.reloads += 1
        self.log.info("{listener}: TLS certificate reloaded", listener=self.name)
        return True


def tlsFactory(tls, factory, clock=None):
    """
    :param tls: the listener's L{ServerTLS}.
    :param factory: the listener's protocol factory.
    :param clock: the L{twisted.internet.interfaces.IReactorTime} on which
        Twisted gathers small writes (replies) into one TLS record; the
        global reactor when L{None}.
    :return: a factory speaking TLS to clients and plain bytes to C{factory}'s
        protocols.
    """
    return TLSMemoryBIOFactory(tls, False, factory, clock=clock)


class CertificateReloader(Service):
    """
    Reload every TLS listener's files on C{SIGHUP} while running.

    :ivar listeners: the L{ServerTLS} of each TLS listener.
    :ivar forwardTo: callables given C{"HUP"} on each C{SIGHUP}, e.g. the
        L{gateway.server.workers.WorkerGroup}'s C{signalWorkers}, so one
        signal to the C{twistd} process reloads every worker.
    """

    log = Logger()

    def __init__(self, reactor, signals=signal):
        """
        :param reactor: calls L{reload} from the reactor's thread
            (C{callFromThread}).
        :param signals: the L{signal} module, or a stand-in for tests.
        """
        self.listeners = []
        self.forwardTo = []
        self._reactor = reactor
        self._signals = signals
        self._previous = None

    def startService(self):
        """
        Handle C{SIGHUP}, if any listener speaks TLS.
        """
        Service.startService(self)
        if self.listeners:
            self._previous = self._signals.signal(self._signals.SIGHUP, self._received)

    def stopService(self):
        """
        Restore the C{SIGHUP} handler found at start.
        """
        Service.stopService(self)
        if self._previous is not None:
            self._signals.signal(self._signals.SIGHUP, self._previous)
            self._previous = None

    def _received(self, signum, frame):
        self._reactor.callFromThread(self.reload)

    def reload(self):
        """
        Reload every listener's files, and pass the signal on.

        :return: how many listeners use new files now.
        """
        self.log.info(
            "SIGHUP: reloading the TLS files of {count} listeners", count=len(self.listeners)
        )
        reloaded = sum(tls.reload() for tls in self.listeners)
        for forward in self.forwardTo:
            forward("HUP")
        return reloaded
