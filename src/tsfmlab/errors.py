"""Exceptions raised for bad user input, always naming the offending param or file."""


class TsfmlabError(Exception):
    """Base class of the errors tsfmlab raises for bad input."""


class ParamError(TsfmlabError, ValueError):
    """A param in params.yaml has a wrong type, value or name."""


class DataError(TsfmlabError, ValueError):
    """An input file or series is missing, corrupted or unusable."""
