"""Helpers of the flag-errors families that are not checks themselves."""
