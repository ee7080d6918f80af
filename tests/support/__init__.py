"""
Helpers any test may use, unit or integration, one module per job: polling
waits with a deadline that says what was awaited (L{waiting}), captured log
events (L{logs}), PROXY protocol headers (L{proxy}), temporary directories
outside the working tree (L{files}) and a look-alike of C{/proc}
(L{procfs}).

Each helper is defined here once and imported wherever it is needed; helpers
that need a broker or a gateway process live in L{tests.integration.support}.
"""
