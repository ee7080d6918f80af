# -*- test-case-name: tests.integration.test_devkafka -*-
"""
``python -m devkafka``: see :mod:`devkafka._cli`.
"""

import sys

from ._cli import main

sys.exit(main())
