"""Applying trained models: :class:`~clothcurate.inference.segmenter.Segmenter` (one fold or an
ensemble of a run's folds), used by evaluation and by ``clothcurate predict``.

Importing this package registers the ``model`` person detector (:mod:`.model_detector`) in
:mod:`clothcurate.detection`'s registry.
"""

from clothcurate.inference import model_detector  # noqa: F401 - registers the "model" detector
