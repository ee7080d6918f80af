"""
The one thing setup.cfg cannot say: the optional C extension of the produce
path (C{gateway/compat/_confluent.c}, see docs/architecture.md, "The
accelerated produce path").  C{optional=True}: without a compiler or Python's
headers the build warns and goes on, and the gateway runs the pure-Python
path.  Linux only (it finds confluent-kafka's librdkafka in /proc/self/maps).
"""

import sys

from setuptools import Extension, setup

extensions = []
if sys.platform.startswith("linux"):
    extensions.append(
        Extension(
            "gateway.compat._confluent",
            ["gateway/compat/_confluent.c"],
            libraries=["dl"],
            optional=True,
        )
    )

setup(ext_modules=extensions)
