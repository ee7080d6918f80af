# -*- test-case-name: tests.ops.test_statuspage -*-
"""
The live status page: one HTML document at C{/}, refreshing itself every
second from C{status.json} (a relative URL, so the page works under any
prefix a proxy gives it).

The document is C{gateway/ops/static/status.html}: plain HTML, CSS and a little
JavaScript, no build step. It shows the state and reason, rates (messages/s
and MB/s in, messages/s delivered, from the differences between two
readings over the server's own clock), the budget as a bar, the producer's
counters, a row per listener, and charts of the last 15 minutes of those
readings kept by the browser.

The charts are drawn by uPlot (MIT, npm package C{uplot} 1.6.32: 50 kB
minified, no dependencies, canvas), vendored as
C{static/uPlot.iife.min.js}, C{static/uPlot.min.css} and
C{static/uPlot.LICENSE.txt} and written inline into the document where it
has a C{<!-- vendored: NAME -->} marker: gateways run on closed networks,
so nothing comes from a CDN, and one response is the whole page.

It is served with a Content-Security-Policy that allows only its own inline
scripts and styles (by hash) and requests to its own origin.
"""

import base64
import hashlib
import re
from importlib import resources

from twisted.web.pages import notFound
from twisted.web.resource import Resource

__all__ = ["StatusPage", "VENDORED", "contentSecurityPolicy", "inlineVendored", "statusPage"]

#: The document, relative to the C{gateway.ops} package.
DOCUMENT = "static/status.html"

#: The vendored files written into the document, relative to C{gateway.ops},
#: each with the element it goes in.
VENDORED = {
    "static/uPlot.min.css": "style",
    "static/uPlot.iife.min.js": "script",
}


def _hashes(document, tag):
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'"
        for body in re.findall(rb"<%s>(.*?)</%s>" % (tag, tag), document, re.S)
    ]


def contentSecurityPolicy(document):
    """
    The policy for C{document}: its inline C{<script>} and C{<style>}
    elements by hash, connections to its own origin, nothing else.

    :param document: the HTML, L{bytes}.
    :rtype: L{str}
    """
    return "; ".join(
        [
            "default-src 'none'",
            "script-src " + " ".join(_hashes(document, b"script")),
            "style-src " + " ".join(_hashes(document, b"style")),
            "connect-src 'self'",
            "img-src 'self' data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


class StatusPage(Resource):
    """
    The document at its own path; C{404} below it, apart from the children
    someone puts there (so it can be a site's root).
    """

    def __init__(self, document):
        """
        :param document: the HTML, L{bytes}.
        """
        super().__init__()
        self.document = document
        self.policy = contentSecurityPolicy(document)

    def getChild(self, path, request):
        """
        C{/} (an empty segment) is the page; anything else not found.
        """
        if path == b"":
            return self
        return notFound()

    def render(self, request):
        """
        C{GET} and C{HEAD}; anything else is C{405} with C{Allow}, as on the
        other endpoints.
        """
        if request.method in (b"GET", b"HEAD"):
            return self.render_GET(request)
        request.setResponseCode(405)
        request.setHeader(b"allow", b"GET, HEAD")
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        return b"method not allowed\n"

    def render_GET(self, request):
        """
        The document, never stored (it is tiny, and a stale copy after an
        upgrade would read the new C{status.json} wrongly).
        """
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"content-security-policy", self.policy.encode("ascii"))
        return self.document


def inlineVendored(document, read):
    """
    Write each vendored file into C{document} in place of its marker
    C{<!-- vendored: NAME -->}, inside the element L{VENDORED} names.

    :param document: the HTML, L{bytes}.
    :param read: a callable from a path in L{VENDORED} to the file's L{bytes}.
    :return: the HTML with the files inline, L{bytes}.
    :raises ValueError: when a marker is missing, or a file would close its
        element early.
    """
    for path, tag in VENDORED.items():
        marker = b"<!-- vendored: %s -->" % (path.rsplit("/", 1)[-1].encode(),)
        body = read(path)
        if marker not in document:
            raise ValueError(f"the status page has no marker {marker.decode()}")
        if b"</%s" % (tag.encode(),) in body.lower():
            raise ValueError(f"{path} contains </{tag}, which would end its element")
        element = b"<%s>%s</%s>" % (tag.encode(), body, tag.encode())
        document = document.replace(marker, element)
    return document


def statusPage():
    """
    The status page resource, for C{gateway.ops.web.buildSite} to mount at C{/}.

    :rtype: L{StatusPage}
    """
    files = resources.files("gateway.ops")
    document = files.joinpath(DOCUMENT).read_bytes()
    return StatusPage(inlineVendored(document, lambda path: files.joinpath(path).read_bytes()))
