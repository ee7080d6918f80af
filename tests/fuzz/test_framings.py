# -*- test-case-name: tests.fuzz.test_framings -*-
"""
Fuzzing every framing (the built-in ones and the example C{stx} plugin)
with hypothesis, a short run in every test run: random byte streams, and
well-framed streams with random corruption, each cut into random reads
with pauses in between (see L{tests.fuzz.harness} for what is checked).
"""

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.fuzz.harness import CASES, FRAMINGS, LIMITS, check, framedStream

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

cases = st.sampled_from(CASES)
limits = st.sampled_from(LIMITS)
cuts = st.lists(st.integers(min_value=0, max_value=10_000), max_size=12)
pauses = st.frozensets(st.integers(min_value=0, max_value=12), max_size=4)


@st.composite
def corruptedStreams(draw, case, limit):
    """
    Messages framed properly, then a few bytes replaced, inserted or
    deleted at random places.
    """
    messages = draw(st.lists(st.binary(min_size=1, max_size=2 * limit + 2), max_size=8))
    data = bytearray(framedStream(case, messages, limit))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        at = draw(st.integers(min_value=0, max_value=len(data)))
        kind = draw(st.sampled_from(["replace", "insert", "delete"]))
        byte = draw(st.integers(min_value=0, max_value=255))
        if kind == "insert":
            data[at:at] = bytes([byte])
        elif at < len(data):
            if kind == "replace":
                data[at] = byte
            else:
                del data[at]
    return bytes(data)


class FuzzTests(SynchronousTestCase):
    """
    Every framing survives arbitrary input, whatever the reads.
    """

    def test_everyFramingCovered(self):
        """
        The cases cover every framing found, the example plugin included.
        """
        self.assertEqual({name for name, _ in CASES}, set(FRAMINGS))
        self.assertIn("stx", FRAMINGS)

    @SETTINGS
    @given(cases, limits, st.binary(max_size=3000), cuts, pauses)
    def test_randomBytes(self, case, limit, data, cuts, pauses):
        """
        Random bytes at random cuts: nothing escapes, nothing is over-held,
        and the reads make no difference.
        """
        check(case, limit, data, cuts, pauses)

    @SETTINGS
    @given(st.data(), cases, limits, cuts, pauses)
    def test_corruptedFrames(self, data, case, limit, cuts, pauses):
        """
        Well-framed streams with a few bytes corrupted, at random cuts: the
        same, on input that gets past the first bytes of a frame.
        """
        stream = data.draw(corruptedStreams(case, limit))
        check(case, limit, stream, cuts, pauses)

    @SETTINGS
    @given(cases, st.lists(st.binary(min_size=1, max_size=64), max_size=8), cuts, pauses)
    def test_wellFramedDelivered(self, case, messages, cuts, pauses):
        """
        Well-framed messages within the limit are all published, in order,
        whatever the reads (not empty ones: C{octet-counting} has none; and
        for C{lines}, none holding a newline or ending with a carriage
        return, which a line cannot carry).
        """
        if case[0] == "lines":
            assume(all(b"\n" not in m and not m.endswith(b"\r") for m in messages))
        stream = framedStream(case, messages, 64)
        published, failed = check(case, 64, stream, cuts, pauses)
        if case[0] == "chunks":
            self.assertEqual(b"".join(published), b"".join(messages))
        else:
            self.assertEqual((published, failed), (messages, None))
