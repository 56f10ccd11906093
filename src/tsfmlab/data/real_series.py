"""Real univariate series that ship inside installed packages, so they are available offline.

Multichannel datasets contribute one series per channel. Use different names for training corpora
(e.g. TSMixup sources) and for held-out evaluation: the stages check the two lists are disjoint.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import ParamError


def _aeon(loader: str) -> Callable[[], list[np.ndarray]]:
    def load() -> list[np.ndarray]:
        import aeon.datasets

        data = getattr(aeon.datasets, loader)()
        if isinstance(data, tuple):  # segmentation datasets: (series, period, change points)
            data = data[0]
        data = np.asarray(data, dtype=np.float64)
        return [row for row in np.atleast_2d(data)]

    return load


# (aeon 1.6 deprecates lynx, shampoo sales and PBS for removal in 1.7: not offered.)
REAL_SERIES: dict[str, Callable[[], list[np.ndarray]]] = {
    "airline": _aeon("load_airline"),  # monthly airline passengers, 144
    "solar": _aeon("load_solar"),  # solar power, 289
    "uschange": _aeon("load_uschange"),  # 5 quarterly macro series, 187
    "longley": _aeon("load_longley"),  # 6 annual series, 16
    "electric_devices": _aeon("load_electric_devices_segmentation"),  # 11532
    "gun_point": _aeon("load_gun_point_segmentation"),  # 1875
}


def load_real_series(names: list[str], param: str) -> dict[str, list[np.ndarray]]:
    """Load the named datasets; an unknown name fails naming ``param`` and the known names."""
    unknown = [n for n in names if n not in REAL_SERIES]
    if unknown:
        raise ParamError(
            f"param {param}: unknown real dataset(s) {', '.join(unknown)}; "
            f"available offline: {', '.join(sorted(REAL_SERIES))}"
        )
    out = {}
    for name in names:
        series = [s[np.isfinite(s)] for s in REAL_SERIES[name]()]
        out[name] = [s for s in series if len(s) >= 2]
    return out
