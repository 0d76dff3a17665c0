"""Reports: our runs beside the paper's Tables II/III and Figures 4, 6, 7 and 9.

``build_report`` reads train-eval run folders (docs/contracts.md) and writes a self-contained
``report.html``, ``report.md``, the figures as PNG and the tables as CSV. Class colours for any
figure or UI: :mod:`clothcurate.reports.colors`. The paper's figures: :mod:`clothcurate.reports.paper`.

Example::

    from clothcurate.reports import build_report
    print(build_report([Path("runs/fpn"), Path("runs/unet")], Path("report")).summary())
"""

from clothcurate.reports.build import ReportResult, build_report

__all__ = ["ReportResult", "build_report"]
