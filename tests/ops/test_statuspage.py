# -*- test-case-name: tests.ops.test_statuspage -*-
"""
The status page resource through L{treq.testing.StubTreq}: the document,
its headers and where it answers. (What it shows is tested in headless
Chromium: tests/integration/test_statuspage_browser.py.)
"""

import base64
import configparser
import fnmatch
import hashlib
import re
from pathlib import Path

from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.pages import notFound
from twisted.web.resource import Resource

from gateway.ops.statuspage import (
    DOCUMENT,
    VENDORED,
    StatusPage,
    contentSecurityPolicy,
    inlineVendored,
    statusPage,
)

ROOT = Path(__file__).parents[2]
STATIC = ROOT / "gateway" / "ops"


def readStatic(path):
    return (STATIC / path).read_bytes()


class Root(Resource):
    """
    A site root: its children, else 404.
    """

    def getChild(self, path, request):
        return notFound()


class Data(Resource):
    """
    A fixed body.
    """

    isLeaf = True

    def __init__(self, body, contentType):
        super().__init__()
        self.body = body
        self.contentType = contentType

    def render_GET(self, request):
        request.setHeader(b"content-type", self.contentType.encode())
        return self.body


def sha256(body):
    return "'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'"


class StatusPageTests(SynchronousTestCase):
    """
    L{statusPage} mounted at C{/} as L{gateway.ops.web.buildSite} mounts it
    (the root's child C{b""}), next to C{status.json}.
    """

    def setUp(self):
        root = Root()
        root.putChild(b"", statusPage())
        root.putChild(b"status.json", Data(b"{}", "application/json"))
        self.stub = StubTreq(root)

    def get(self, url, method="GET"):
        response = self.successResultOf(self.stub.request(method, url))
        body = self.successResultOf(response.content())
        return response, body

    def test_document(self):
        """
        C{GET /} answers the HTML document from the package, UTF-8, not to be
        stored by caches.
        """
        response, body = self.get("http://gateway/")
        self.assertEqual(response.code, 200)
        self.assertEqual(
            response.headers.getRawHeaders("content-type"), ["text/html; charset=utf-8"]
        )
        self.assertEqual(response.headers.getRawHeaders("cache-control"), ["no-store"])
        self.assertEqual(response.headers.getRawHeaders("x-content-type-options"), ["nosniff"])
        self.assertEqual(body, inlineVendored(readStatic(DOCUMENT), readStatic))
        self.assertTrue(body.startswith(b"<!DOCTYPE html>"))

    def test_head(self):
        """
        C{HEAD /} answers the headers without the body.
        """
        response, body = self.get("http://gateway/", "HEAD")
        self.assertEqual((response.code, body), (200, b""))

    def test_otherMethods(self):
        """
        Methods other than C{GET} and C{HEAD} are not allowed (C{405}, with
        C{Allow}).
        """
        for method in ("POST", "PUT", "DELETE"):
            response, body = self.get("http://gateway/", method)
            self.assertEqual((response.code, body), (405, b"method not allowed\n"))
            self.assertEqual(response.headers.getRawHeaders("allow"), ["GET, HEAD"])

    def test_elsewhere(self):
        """
        Paths below the page that nobody mounted are not found; the
        siblings (C{status.json}) still answer.
        """
        self.assertEqual(self.get("http://gateway/nothing")[0].code, 404)
        response, body = self.get("http://gateway/status.json")
        self.assertEqual((response.code, body), (200, b"{}"))

    def test_asRoot(self):
        """
        The page can also be a site's root: C{/} is the page, its children
        answer, anything else is not found.
        """
        page = statusPage()
        page.putChild(b"status.json", Data(b"{}", "application/json"))
        stub = StubTreq(page)
        response = self.successResultOf(stub.get("http://gateway/"))
        self.assertEqual(response.code, 200)
        self.assertEqual(self.successResultOf(stub.get("http://gateway/status.json")).code, 200)
        self.assertEqual(self.successResultOf(stub.get("http://gateway/x")).code, 404)

    def test_contentSecurityPolicy(self):
        """
        The page is served with a policy that runs its own inline script and
        style (by hash) and nothing else, and lets it fetch only from its own
        origin.
        """
        response, body = self.get("http://gateway/")
        [policy] = response.headers.getRawHeaders("content-security-policy")
        scripts = re.findall(rb"<script>(.*?)</script>", body, re.S)
        styles = re.findall(rb"<style>(.*?)</style>", body, re.S)
        # The page's own and uPlot's, each.
        self.assertEqual((len(scripts), len(styles)), (2, 2))
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        self.assertEqual(directives["default-src"], "'none'")
        self.assertEqual(directives["script-src"], " ".join(sha256(s) for s in scripts))
        self.assertEqual(directives["style-src"], " ".join(sha256(s) for s in styles))
        self.assertEqual(directives["connect-src"], "'self'")
        self.assertNotIn(b"<script src", body)
        self.assertNotIn(b" style=", body)

    def test_policyOfDocument(self):
        """
        L{contentSecurityPolicy} hashes every inline script and style.
        """
        policy = contentSecurityPolicy(b"<style>a</style><script>1</script><script>2</script>")
        self.assertIn(f"script-src {sha256(b'1')} {sha256(b'2')};", policy)
        self.assertIn(f"style-src {sha256(b'a')};", policy)
        self.assertEqual(StatusPage(b"<p>").document, b"<p>")

    def test_relativeFetch(self):
        """
        The page reads C{status.json} relative to itself (it works under any
        prefix) every second.
        """
        _, body = self.get("http://gateway/")
        self.assertIn(b'fetch("status.json"', body)
        self.assertNotIn(b'"/status.json"', body)
        self.assertIn(b"var INTERVAL = 1000;", body)

    def test_packaged(self):
        """
        The document, the vendored files and uPlot's licence are package
        data: setup.cfg's patterns for C{gateway.ops} match each of them.
        """
        config = configparser.ConfigParser()
        config.read(ROOT / "setup.cfg")
        patterns = [p.strip() for p in config["options.package_data"]["gateway.ops"].split(",")]
        self.assertEqual(DOCUMENT, "static/status.html")
        for path in [DOCUMENT, *VENDORED, "static/uPlot.LICENSE.txt"]:
            self.assertTrue((STATIC / path).is_file(), path)
            self.assertTrue(any(fnmatch.fnmatch(path, p) for p in patterns), (path, patterns))


class VendoredTests(SynchronousTestCase):
    """
    L{inlineVendored} writes the vendored files into the document.
    """

    def test_inline(self):
        """
        Each marker is replaced by its file inside the element L{VENDORED}
        names; the served page has no marker left, and uPlot in it.
        """
        files = {"static/uPlot.min.css": b".u{}", "static/uPlot.iife.min.js": b"var uPlot=1;"}
        document = b"<!-- vendored: uPlot.min.css --><p><!-- vendored: uPlot.iife.min.js -->"
        self.assertEqual(
            inlineVendored(document, files.__getitem__),
            b"<style>.u{}</style><p><script>var uPlot=1;</script>",
        )
        served = statusPage().document
        self.assertNotIn(b"<!-- vendored:", served)
        self.assertIn(b"<script>/*! https://github.com/leeoniya/uPlot (v1.6.32) */", served)

    def test_missingMarker(self):
        """
        A document without a file's marker is refused, naming the marker.
        """
        error = self.assertRaises(ValueError, inlineVendored, b"<p>", lambda path: b"")
        self.assertIn("<!-- vendored: uPlot.min.css -->", str(error))

    def test_elementEndInFile(self):
        """
        A file that would end its element early (C{</script>} inside a
        script) is refused, naming the file.
        """
        document = b"<!-- vendored: uPlot.min.css --><!-- vendored: uPlot.iife.min.js -->"
        error = self.assertRaises(
            ValueError,
            inlineVendored,
            document,
            lambda path: b"x='</SCRIPT>'" if path.endswith(".js") else b"",
        )
        self.assertIn("static/uPlot.iife.min.js", str(error))
