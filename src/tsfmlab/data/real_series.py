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
        if isinstance(data, tuple):  # segmentation (series, period, change points), anomaly (series, labels)
            data = data[0]
        data = np.asarray(data, dtype=np.float64)
        if data.ndim == 2 and data.shape[0] > data.shape[1]:  # anomaly datasets: (time, channels)
            data = data.T
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
    "internal_bleeding": _aeon("load_kdd_tsad_135"),  # arterial blood pressure (UCR anomaly archive), 7501
    "daphnet": _aeon("load_daphnet_s06r02e0"),  # 9 accelerometer channels of walking (64 Hz), 7040
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
