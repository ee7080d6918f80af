"""
Helpers shared by the framing tests: deliveries that pause, resume or
receive more bytes from inside C{send}.
"""

__all__ = ["receiveInsideDelivery", "resumeInsideDelivery"]


def resumeInsideDelivery(protocol, stream, data):
    """
    Buffer C{data} while paused, then resume; the first delivery pauses and
    resumes again from inside C{send}, as a producer that fills and drains
    at once would.
    """
    original = stream.send

    def sendPauseResume(payload):
        original(payload)
        if len(stream.messages) == 1:
            protocol.pauseProducing()
            protocol.resumeProducing()

    protocol._send = sendPauseResume
    protocol.pauseProducing()
    protocol.dataReceived(data)
    protocol.resumeProducing()


def receiveInsideDelivery(protocol, stream, data, late):
    """
    Give the protocol C{data}; the first delivery hands it C{late} from
    inside C{send}.
    """
    original = stream.send

    def sendThenReceive(payload):
        original(payload)
        if len(stream.messages) == 1:
            protocol.dataReceived(late)

    protocol._send = sendThenReceive
    protocol.dataReceived(data)
