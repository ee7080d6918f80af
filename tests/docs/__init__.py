"""
Tests of the documentation: the references generated from the code, and
the site's build.
"""
