"""``mocme report``: a run directory as one self-contained HTML page (config, metrics, figures).

Needs matplotlib (the ``plot`` extra). Figures are SVG, embedded as ``data:`` images; the page has
no scripts and loads nothing from elsewhere.
"""

from mocme.report.build import build_report, write_report

__all__ = ["build_report", "write_report"]
