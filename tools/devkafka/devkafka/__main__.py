# -*- test-case-name: tests.integration.test_devkafka -*-
"""
``python -m gateway.devkafka``: see :mod:`gateway.devkafka._cli`.
"""

import sys

from ._cli import main

sys.exit(main())
