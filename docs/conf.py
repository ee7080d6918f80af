"""
Sphinx configuration of the documentation site (C{scripts/docs} builds it
into C{build/docs} with warnings as errors).

The pages are the Markdown files of C{docs/}, read as they are by
myst-parser.  The API reference is made by pydoctor from the code's epytext
docstrings, as Twisted's is: C{scripts/docs} runs it into C{api/} beside
the pages.
"""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway import __version__  # noqa: E402

project = "kafka gateway"
copyright = "the kafka gateway authors"
version = release = __version__

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "examples"]
# Headings become link targets, so "page.md#a-heading" links are checked.
myst_heading_anchors = 4
myst_enable_extensions = ["deflist"]
html_theme = "alabaster"
html_static_path = []
html_extra_path = ["architecture.svg"]
# Links between pages are checked at build time (a missing page or anchor is
# a warning, so an error under -W); links to the outside are not fetched.
nitpicky = False
