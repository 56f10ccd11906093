"""tsfmlab: declarative, DVC-reproducible experiments for time-series foundation models."""

__version__ = "0.1.0"
