"""Sphinx extension: write each inline ``<script>`` once per page.

Sphinx 7.4 registers an inline script added after the builder starts (``app.add_js_file(None,
body=...)``) twice: once with the file name ``None`` and once with ``''``. sphinx-thebe's
``const THEBE_JS_URL = ...`` is such a script, so every page threw "Identifier 'THEBE_JS_URL'
has already been declared" in the browser. Sphinx fixed this in 8.2 (sphinx-doc/sphinx#13402);
Jupyter Book 1.x needs Sphinx 7, so this extension drops the second copy from each page.
`make site-check` fails if a page raises a JavaScript error again.
"""
from __future__ import annotations


def _key(script) -> tuple:
    attributes = getattr(script, "attributes", {}) or {}
    return (getattr(script, "filename", script) or "", getattr(script, "priority", 500),
            tuple(sorted(attributes.items())))


def drop_repeated_scripts(app, pagename, templatename, context, doctree) -> None:
    """Remove repeated entries (same file or body, priority and attributes) from ``script_files``."""
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen: set[tuple] = set()
    kept = []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept


def setup(app):
    app.connect("html-page-context", drop_repeated_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
