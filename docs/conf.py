"""Sphinx configuration for the LabHub documentation (MyST Markdown)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "_ext"))

project = "LabHub"
author = "LabHub developers"
copyright = "2026, LabHub developers"  # noqa: A001

extensions = ["myst_parser"]
# Local extensions that generate reference pages (added when present in docs/_ext).
for _ext in sorted((HERE / "_ext").glob("labhub_*.py")):
    extensions.append(_ext.stem)

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
myst_enable_extensions = ["colon_fence", "deflist", "fieldlist"]
myst_heading_anchors = 3
html_theme = "alabaster"
html_title = "LabHub"
suppress_warnings = ["myst.xref_missing"]
