"""clothcurate: build, clean and benchmark clothing-segmentation datasets for soft biometrics.

The pipeline, one subpackage per stage::

    labelmaps/  Table I as data (15 target classes, one map per source vocabulary)
    curation/   sources -> ingest -> flags -> folds -> export -> review   (FiftyOne)
    training/   data -> models -> train -> evaluate -> write-back         (PyTorch, smp)
    reports/    tables and figures from run folders
"""

__version__ = "0.1.0"
