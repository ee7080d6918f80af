# -*- test-case-name: tests.fuzz.test_framings -*-
"""
The longer fuzz run: coverage-guided (libFuzzer through atheris), every
framing and the example C{stx} plugin, with the checks of
L{tests.fuzz.harness}.  Not part of the test suite (the hypothesis tests
next to it are); run it by hand or on a schedule.

From the repository root (the checkout's gateway and example plugin are
fuzzed), with atheris, which is not in the test extra (a binary wheel for
CPython 3.11 on x86-64 Linux; it needs no compiler)::

    .venv/bin/pip install atheris
    mkdir -p /tmp/gateway-fuzz
    .venv/bin/python tests/fuzz/atheris_framings.py /tmp/gateway-fuzz \
        -max_total_time=300 -max_len=4096 -artifact_prefix=/tmp/gateway-fuzz-

Any libFuzzer option works (C{-runs=N}, C{-jobs=N}, C{-dict=...}); without
C{-max_len} libFuzzer grows its inputs slowly from a few bytes.  A failure
stops the run, prints the Python traceback and writes the input as
C{/tmp/gateway-fuzz-crash-<sha1>}; run the script with that file as its only
argument to reproduce it.  The input's first bytes choose the framing case, the
message size limit, the read cuts and the pauses; the rest is the stream.
"""

import sys
from pathlib import Path

import atheris

# The checkout's gateway and tests, and its example plugin (as pytest's
# pythonpath setting in setup.cfg has it).
ROOT = Path(__file__).resolve().parent.parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "plugins" / "gateway-framing-stx")]

with atheris.instrument_imports(include=["gateway"]):
    from tests.fuzz.harness import CASES, FRAMINGS, LIMITS, check

    # Plugins import their protocol's module on first use: import them all
    # now, so that they are instrumented too.
    for plugin in FRAMINGS.values():
        plugin.protocolClass()

if "stx" not in FRAMINGS:
    sys.exit(f"the example plugin is not in {ROOT / 'plugins'}")


def testOneInput(data):
    """
    One input: a framing case, a limit, cuts and pauses, then the stream.
    """
    provider = atheris.FuzzedDataProvider(data)
    case = CASES[provider.ConsumeIntInRange(0, len(CASES) - 1)]
    limit = LIMITS[provider.ConsumeIntInRange(0, len(LIMITS) - 1)]
    cuts = [provider.ConsumeIntInRange(0, 4096) for _ in range(provider.ConsumeIntInRange(0, 8))]
    pauses = frozenset(
        provider.ConsumeIntInRange(0, 8) for _ in range(provider.ConsumeIntInRange(0, 3))
    )
    check(case, limit, provider.ConsumeBytes(provider.remaining_bytes()), cuts, pauses)


def main():
    atheris.Setup(sys.argv, testOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
