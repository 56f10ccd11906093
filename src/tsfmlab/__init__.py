"""tsfmlab: declarative, DVC-reproducible experiments for time-series foundation models."""

from . import numerics as _numerics

# Before numpy, torch or numba load: their CPU kernels are chosen when they load (tsfmlab.numerics).
_numerics.pin()

__version__ = "0.1.0"
