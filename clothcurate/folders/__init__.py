"""One typed module per on-disk folder: the export folder and the train-eval run folder.

Both import neither torch nor FiftyOne, so training (no FiftyOne) and the report (no torch
needed) read them alike.
"""

from clothcurate.folders.export import ExportFolder, ExportSample, read_export
from clothcurate.folders.run import RunFolder

__all__ = ["ExportFolder", "ExportSample", "read_export", "RunFolder"]
