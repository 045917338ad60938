"""Errors that mean bad input (not a bug): the CLI prints them as one line and exits 2.

A module of its own so that the CLI can catch them without importing pandas or torch."""


class InputError(ValueError):
    """Bad input that is not a params.yaml error (missing artifacts, inconsistent options)."""


class MissingRunError(InputError, FileNotFoundError):
    """A run that params.yaml asks for has no metrics file."""
