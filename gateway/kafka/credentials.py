# -*- test-case-name: tests.kafka.test_credentials -*-
"""
Kafka properties that are secrets (passwords, private keys): read from a
file or an environment variable instead of the command line, kept out of
anything printed, and handed to worker processes through their environment,
never their command line (which C{ps} shows to every user).
"""

import os
import re

__all__ = [
    "SECRET_ENV_PREFIX",
    "isSecret",
    "readOptionEnv",
    "readOptionFile",
    "redacted",
    "workerSecrets",
]

#: Worker processes get each secret given on the parent's command line in
#: an environment variable named by this prefix and the property.
SECRET_ENV_PREFIX = "GATEWAY_KAFKA_SECRET_"

#: What a secret property's name contains (librdkafka's names:
#: sasl.password, ssl.key.password, ssl.keystore.password, ssl.key.pem,
#: sasl.oauthbearer.client.secret, sasl.jaas.config, ...).
_SECRET = re.compile(r"password|secret|token|credential|jaas|oauthbearer\.config|key\.pem$")

_REDACTED = "<secret>"


def isSecret(name):
    """
    :return: whether the Kafka property C{name} holds a secret.
    """
    return bool(_SECRET.search(name.lower()))


def redacted(config):
    """
    :return: a copy of C{config} with every secret's value replaced, for
        anything shown or logged.
    """
    return {k: _REDACTED if isSecret(k) else v for k, v in config.items()}


def _split(value, option, example):
    key, sep, rest = value.partition("=")
    if not sep or not key.strip() or not rest.strip():
        raise ValueError(f"{option} {value!r}: expected KEY={example}")
    return key.strip(), rest.strip()


def readOptionFile(value):
    """
    Read C{KEY=PATH}: the property C{KEY} is the file's content, one
    trailing line end removed.

    :return: C{(key, content)}.
    :raises ValueError: naming the file (never its content).
    """
    key, path = _split(value, "--kafka-option-file", "PATH, e.g. sasl.password=/run/secrets/kafka")
    try:
        with open(path, encoding="utf-8") as f:
            content = f.read()
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or "not UTF-8 text"
        raise ValueError(f"--kafka-option-file {key}={path}: cannot read it: {reason}") from None
    if content.endswith("\n"):
        content = content[:-1]
    if content.endswith("\r"):
        content = content[:-1]
    return key, content


def readOptionEnv(value, environ=None):
    """
    Read C{KEY=VARIABLE}: the property C{KEY} is the environment variable's
    value.

    :return: C{(key, value)}.
    :raises ValueError: naming the variable when it is not set.
    """
    environ = os.environ if environ is None else environ
    key, variable = _split(
        value, "--kafka-option-env", "VARIABLE, e.g. sasl.password=KAFKA_PASSWORD"
    )
    if variable not in environ:
        raise ValueError(f"--kafka-option-env {key}={variable}: {variable} is not set")
    return key, environ[variable]


def _envName(key):
    return SECRET_ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", key).upper()


def workerSecrets(arguments, options):
    """
    A worker's copy of the parent's command line without the secrets given
    inline: each C{--kafka-option SECRET=VALUE} becomes C{--kafka-option-env
    SECRET=GATEWAY_KAFKA_SECRET_...}, the value going into the environment
    the worker inherits.  C{--kafka-option-file} and C{--kafka-option-env}
    name no secret and stay.

    :param arguments: the parent's C{gateway} options.
    :param options: the parsed Kafka options (property to value).
    :return: C{(arguments, environment)}, the variables to add to the
        worker's environment.
    :raises ValueError: if a secret's value would still be on the command
        line (an option form not recognised); the value is not named.
    """
    kept, environment = [], {}
    remaining = iter(arguments)
    for argument in remaining:
        if argument == "--kafka-option":
            setting = next(remaining, None)
            kept.append(argument if setting is None else _moved(setting, environment))
        elif argument.startswith("--kafka-option="):
            kept.append(_moved(argument.partition("=")[2], environment))
        else:
            kept.append(argument)
    # A safety net for forms not recognised above (short values would
    # match unrelated arguments, e.g. a port).
    secrets = [str(v) for k, v in options.items() if isSecret(k) and len(str(v)) >= 6]
    for argument in kept:
        if any(secret in argument for secret in secrets):
            raise ValueError(
                "a Kafka secret would be on a worker's command line: give it with "
                "--kafka-option-file or --kafka-option-env"
            )
    return kept, environment


def _moved(setting, environment):
    """
    The arguments replacing C{--kafka-option SETTING}, as one string
    C{--kafka-option-env=KEY=VARIABLE} for a secret, or C{--kafka-option=SETTING}.
    """
    key, sep, value = setting.partition("=")
    key = key.strip()
    if sep and isSecret(key):
        environment[_envName(key)] = value.strip()
        return f"--kafka-option-env={key}={_envName(key)}"
    return f"--kafka-option={setting}"
