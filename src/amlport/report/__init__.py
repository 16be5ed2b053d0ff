"""``amlport report``: one self-contained HTML page of a workspace or a snapshot.

``data`` gathers what the page shows, ``pipelines`` lays out designer pipeline diagrams,
``html`` writes the page (docs/design/0008-report.md).
"""

from amlport.report.data import Report, add_history, from_snapshot, from_source
from amlport.report.html import render_html

__all__ = ["Report", "add_history", "from_snapshot", "from_source", "render_html"]
