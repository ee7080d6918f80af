"""
Helpers for the integration tests, one module per job, each helper defined
once: the gateway as a subprocess and its log (L{process}), what the
operating system says about it (L{procfs}), its HTTP endpoints (L{http}),
client sockets (L{sockets}), sequence-numbered clients and delivery checks
(L{clients}), topics and what Kafka holds (L{topics}), brokers of a test's
own (L{brokers}).

Waits, captured logs and PROXY headers, which unit tests use too, are in
L{tests.support}.
"""
