"""
A stand-in for a listener service where only its accepting matters.
"""

__all__ = ["RecordingListener"]


class RecordingListener:
    """
    Records C{pauseAccepting} and C{resumeAccepting} calls, in order, as
    C{("pause" | "resume", reason)}.
    """

    def __init__(self):
        self.calls = []

    def pauseAccepting(self, reason):
        self.calls.append(("pause", reason))

    def resumeAccepting(self, reason):
        self.calls.append(("resume", reason))
