# -*- test-case-name: tests.integration.test_kafka_security -*-
"""
A secured development broker: besides its PLAINTEXT listener (which the
readiness probe and the consume helper keep using), a SASL_PLAINTEXT, an
SSL and a SASL_SSL listener, each on a port of its own.

 - SASL listeners enable PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 for the
   same users; SCRAM credentials are written when the storage is formatted
   (C{kafka-storage format --add-scram}, KIP-900), PLAIN ones are in the
   listener's JAAS configuration.
 - The SSL listener requires a client certificate signed by the test CA
   (mutual TLS); SASL_SSL authenticates with SASL only.
 - Certificates are made at start (L{devkafka._certs}) under the run
   folder's C{certs/}.
"""

from ._certs import makeCertificates

__all__ = ["SECURE_LISTENERS", "DEFAULT_USERS", "scramArguments", "secureProperties"]

#: The listeners a secured broker adds, by name (= security protocol).
SECURE_LISTENERS = ("SASL_PLAINTEXT", "SSL", "SASL_SSL")

#: The users a secured broker knows unless told otherwise.
DEFAULT_USERS = {"gateway": "gateway-secret"}

MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

_PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"
_SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule"


def scramArguments(users):
    """
    :return: the C{kafka-storage format} arguments creating every user's
        SCRAM credentials, for both SCRAM mechanisms.
    """
    arguments = []
    for name, password in users.items():
        for mechanism in MECHANISMS[1:]:
            arguments += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
    return arguments


def _jaasQuote(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def secureProperties(host, ports, users, runDir):
    """
    The broker properties of the secured listeners.

    :param ports: listener name to port: the PLAINTEXT, CONTROLLER and
        every L{SECURE_LISTENERS} one.
    :param users: user name to password.
    :param runDir: the run folder; certificates go to its C{certs/}.
    :return: C{(properties, certificates)}: a L{dict} of properties that
        replace or add to the template's, and the
        L{devkafka._certs.Certificates}.
    """
    certificates = makeCertificates(runDir / "certs")
    names = ("PLAINTEXT", "CONTROLLER", *SECURE_LISTENERS)
    advertised = [n for n in names if n != "CONTROLLER"]
    plainUsers = " ".join(f"user_{name}={_jaasQuote(pw)}" for name, pw in users.items())
    properties = {
        "listeners": ",".join(f"{n}://{host}:{ports[n]}" for n in names),
        "advertised.listeners": ",".join(f"{n}://{host}:{ports[n]}" for n in advertised),
        "listener.security.protocol.map": ",".join(
            ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
            + [f"{n}:{n}" for n in SECURE_LISTENERS]
        ),
        "sasl.enabled.mechanisms": ",".join(MECHANISMS),
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(certificates.broker),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(certificates.ca),
        "listener.name.ssl.ssl.client.auth": "required",
        "listener.name.sasl_ssl.ssl.client.auth": "none",
    }
    for listener in ("sasl_plaintext", "sasl_ssl"):
        prefix = f"listener.name.{listener}"
        properties[f"{prefix}.plain.sasl.jaas.config"] = f"{_PLAIN} required {plainUsers};"
        for mechanism in ("scram-sha-256", "scram-sha-512"):
            properties[f"{prefix}.{mechanism}.sasl.jaas.config"] = f"{_SCRAM} required;"
    return properties, certificates


def applyProperties(template, properties):
    """
    :return: the properties file C{template} with C{properties} replacing
        the lines setting the same names, and the others appended.
    """
    lines, seen = [], set()
    for line in template.splitlines():
        name = line.partition("=")[0].strip()
        if name in properties and not line.lstrip().startswith("#"):
            lines.append(f"{name}={properties[name]}")
            seen.add(name)
        else:
            lines.append(line)
    lines.append("")
    lines.append("# The secured listeners (devkafka --secured).")
    lines += [f"{name}={value}" for name, value in properties.items() if name not in seen]
    return "\n".join(lines) + "\n"
