"""Curation with FiftyOne: sources -> ingest -> flags -> folds -> export -> review."""
