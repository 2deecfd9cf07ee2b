"""Browser tests: a real Chromium (Selenium, Debian's chromium-driver) against the local stack's web viewer.

A package (this file), so its conftest.py imports as ``browser.conftest`` and does not hide tests/conftest.py,
which other test modules import as ``conftest``.
"""
