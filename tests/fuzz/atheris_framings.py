"""
The longer fuzz run: coverage-guided (libFuzzer through atheris), every
framing and the example C{stx} plugin, with the checks of
L{tests.fuzz.harness}.  Not part of the test suite (the hypothesis tests
next to it are); run it by hand or on a schedule.

From the repository root, with the plugin installed (C{scripts/_venv.sh}
does) and atheris, which is not in the test extra (a binary wheel for
CPython 3.11 on x86-64 Linux; it needs no compiler)::

    .venv/bin/pip install atheris
    mkdir -p .fuzz-corpus
    .venv/bin/python tests/fuzz/atheris_framings.py .fuzz-corpus -max_total_time=300

Any libFuzzer option works (C{-runs=N}, C{-jobs=N}, C{-dict=...}).  A
failure stops the run, prints the Python traceback and writes the input as
C{crash-<sha1>}; run the script with that file as its only argument to
reproduce it.  The input's first bytes choose the framing case, the
message size limit, the read cuts and the pauses; the rest is the stream.
"""

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

with atheris.instrument_imports(include=["gateway"]):
    from tests.fuzz.harness import CASES, LIMITS, check


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
