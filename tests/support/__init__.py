"""
Helpers any test may use, unit or integration: polling waits with a deadline
that says what was awaited, captured log events, PROXY protocol headers.

Each helper is defined here once and imported wherever it is needed; helpers
that need a broker or a gateway process live in L{tests.integration.support}.
"""
