"""Seeded on-the-fly augmentations of multivariate trajectories, as GluonTS transformations.

Entries are GluonTS data entries: dicts with a ``target`` that is (D, T) for a D-channel trajectory or
(T,) for a univariate one (treated as (1, T)), plus metadata such as ``system`` and ``start``.

* :class:`RandomAffineTransform`: random affine map of the standardised channels.
* :class:`RandomConvexCombinationTransform`: Dirichlet-weighted convex combinations of the channels.
* :class:`RandomProjectedSkewTransform`: driver/response skew product of two different systems.

Common behaviour:

* Each transformation owns a ``numpy.random.Generator`` seeded from ``seed``: two instances with the same
  seed applied to the same stream give identical outputs. The generator is not reset between passes,
  so successive epochs see fresh augmentations.
* With probability ``probability`` an entry is augmented, otherwise it passes through as a copy.
* Augmentations are training-only: with ``is_train=False`` entries pass through (as copies) and no
  random numbers are drawn.
* Inputs are never modified: every output is a new dict (shallow copy of the metadata) with a new
  target array. Augmented targets are float32.
* Statistics use the finite values only; non-finite values propagate as NaN to the output time steps
  they touch. A target without any finite value raises :class:`DataError` naming the system.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from gluonts.transform import MapTransformation, Transformation

from ..errors import DataError, ParamError

__all__ = [
    "RandomAffineTransform",
    "RandomConvexCombinationTransform",
    "RandomProjectedSkewTransform",
    "standardize",
]

SYSTEM_FIELD = "system"
Entry = dict[str, Any]


# ---------------------------------------------------------------------------------------- validation


def _check_out_dim(out_dim: int | None, allow_none: bool = True) -> int | None:
    if out_dim is None and allow_none:
        return None
    if isinstance(out_dim, bool) or not isinstance(out_dim, (int, np.integer)) or out_dim < 1:
        raise ParamError(
            f"out_dim: expected an integer >= 1{' or None' if allow_none else ''}, got {out_dim!r}"
        )
    return int(out_dim)


def _check_positive(name: str, value: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.number))
        or not (math.isfinite(value) and value > 0)
    ):
        raise ParamError(f"{name}: expected a finite number > 0, got {value!r}")
    return float(value)


def _check_probability(probability: float) -> float:
    if (
        isinstance(probability, bool)
        or not isinstance(probability, (int, float, np.number))
        or not 0.0 <= probability <= 1.0
    ):
        raise ParamError(f"probability: expected a number in [0, 1], got {probability!r}")
    return float(probability)


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParamError(f"seed: expected an integer >= 0, got {seed!r}")
    return int(seed)


# ------------------------------------------------------------------------------------ shared helpers


def _system(entry: Entry) -> str:
    return str(entry.get(SYSTEM_FIELD, "<unknown system>"))


def _copy_entry(entry: Entry, target_field: str) -> Entry:
    """A new dict with the same metadata and a copy of the target (values and dtype unchanged)."""
    out = dict(entry)
    if target_field in out:
        out[target_field] = np.array(out[target_field], copy=True)
    return out


def _target_2d(entry: Entry, target_field: str) -> tuple[np.ndarray, bool]:
    """The target as a float64 (D, T) array (a copy) and whether it was 1-D; checks shape and finiteness."""
    if target_field not in entry:
        raise DataError(f"system {_system(entry)!r}: entry has no {target_field!r} field")
    x = np.array(entry[target_field], dtype=np.float64)
    if x.ndim not in (1, 2):
        raise DataError(
            f"system {_system(entry)!r}: {target_field!r} must be 1-D (T,) or 2-D (D, T), got shape {x.shape}"
        )
    was_1d = x.ndim == 1
    if was_1d:
        x = x[None, :]
    if not np.isfinite(x).any():
        raise DataError(f"system {_system(entry)!r}: {target_field!r} has no finite values")
    return x, was_1d


def standardize(x: np.ndarray) -> np.ndarray:
    """Per-channel z-score of a (D, T) array: ``(x - mean) / std`` over each channel's finite values.

    Channels with zero spread are only centred (std taken as 1); non-finite values become NaN and a channel
    without finite values becomes all NaN. Returns a new float64 array.
    """
    x = np.asarray(x, dtype=np.float64)
    finite = np.isfinite(x)
    count = finite.sum(axis=1, keepdims=True)
    filled = np.where(finite, x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis=1, keepdims=True) / count
        var = (np.where(finite, x - mean, 0.0) ** 2).sum(axis=1, keepdims=True) / count
        std = np.sqrt(var)
        std = np.where(std > 0, std, 1.0)
        return np.where(finite, (x - mean) / std, np.nan)


class _RandomMapAugmentation(MapTransformation):
    """One output per input entry; subclasses implement :meth:`_augment` on a (D, T) float64 array."""

    def __init__(self, probability: float, seed: int, target_field: str) -> None:
        self.probability = _check_probability(probability)
        self.seed = _check_seed(seed)
        self.target_field = target_field
        self.rng = np.random.default_rng(self.seed)

    def map_transform(self, data: Entry, is_train: bool) -> Entry:
        if not is_train or self.rng.random() >= self.probability:
            return _copy_entry(data, self.target_field)
        x, was_1d = _target_2d(data, self.target_field)
        y = self._augment(x)
        if was_1d and y.shape[0] == 1:
            y = y[0]
        out = dict(data)
        out[self.target_field] = y.astype(np.float32)
        return out

    def _augment(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


# ------------------------------------------------------------------------------------- augmentations


class RandomAffineTransform(_RandomMapAugmentation):
    """Random affine map of the standardised channels.

    For a target x of shape (D, T), with z = :func:`standardize` (x) (per-channel z-score)::

        y = A z + b 1_T^T,   A_ij ~ N(0, scale^2 / D) (out_dim x D),   b_i ~ N(0, scale^2) (out_dim,)

    A and b are drawn afresh for every augmented entry. The output is (out_dim, T) float32 (out_dim
    defaults to D); a 1-D input with a single output channel stays 1-D.
    """

    def __init__(
        self,
        out_dim: int | None = None,
        scale: float = 1.0,
        probability: float = 1.0,
        seed: int = 0,
        target_field: str = "target",
    ) -> None:
        super().__init__(probability, seed, target_field)
        self.out_dim = _check_out_dim(out_dim)
        self.scale = _check_positive("scale", scale)

    def _augment(self, x: np.ndarray) -> np.ndarray:
        d = x.shape[0]
        k = self.out_dim or d
        a = self.rng.standard_normal((k, d)) * (self.scale / math.sqrt(d))
        b = self.rng.standard_normal((k, 1)) * self.scale
        return a @ standardize(x) + b


class RandomConvexCombinationTransform(_RandomMapAugmentation):
    """Random convex combinations of the (raw, unstandardised) channels.

    For a target x of shape (D, T)::

        y = W x,   each row W_i ~ Dirichlet(alpha * 1_D)   (W is out_dim x D, W_ij >= 0, sum_j W_ij = 1)

    so at every time step each output channel lies between the minimum and maximum of the input channels.
    W is drawn afresh for every augmented entry (see :meth:`sample_weights`). The output is (out_dim, T)
    float32 (out_dim defaults to D); a 1-D input with a single output channel stays 1-D. Small alpha gives
    weights concentrated on few channels, large alpha weights close to uniform.
    """

    def __init__(
        self,
        out_dim: int | None = None,
        alpha: float = 1.0,
        probability: float = 1.0,
        seed: int = 0,
        target_field: str = "target",
    ) -> None:
        super().__init__(probability, seed, target_field)
        self.out_dim = _check_out_dim(out_dim)
        self.alpha = _check_positive("alpha", alpha)

    def sample_weights(self, num_channels: int) -> np.ndarray:
        """Draw W of shape (out_dim or num_channels, num_channels), rows on the probability simplex."""
        k = self.out_dim or num_channels
        return self.rng.dirichlet(np.full(num_channels, self.alpha), size=k)

    def _augment(self, x: np.ndarray) -> np.ndarray:
        return self.sample_weights(x.shape[0]) @ x


class RandomProjectedSkewTransform(Transformation):
    """Skew product of two different systems: a driver projected onto a response.

    Works on the stream. Each training entry is, with probability ``probability``, selected for skewing
    (otherwise it passes through as a copy). A selected entry is paired with the oldest buffered selected
    entry of a *different* ``system``; if there is none it waits in a buffer of at most ``buffer_size``
    entries (when full, the oldest waiting entry passes through unaugmented). One pair gives one output, so
    the stream gets shorter; entries still waiting when the input ends pass through unaugmented. A system is
    never paired with itself.

    For a pair, which entry is the driver d and which the response r is a fair coin flip. With
    z_d (D_d, T_d) and z_r (D_r, T_r) their :func:`standardize` d targets and T = min(T_d, T_r)::

        y = P_r z_r[:, :T] + c * P_d z_d[:, :T]
        P_r ~ N(0, 1 / D_r) (out_dim x D_r),   P_d ~ N(0, 1 / D_d) (out_dim x D_d),   c ~ U(coupling_range)

    The output target is (out_dim, T) float32 (always 2-D); both trajectories keep their first T steps, so
    the response's ``start`` stays valid. The other fields are copied from the response, with ``system`` set
    to ``"<driver>+<response>"`` and ``skew_systems`` to ``[driver, response]``.
    """

    def __init__(
        self,
        out_dim: int = 3,
        probability: float = 1.0,
        seed: int = 0,
        target_field: str = "target",
        coupling_range: tuple[float, float] = (0.1, 1.0),
        buffer_size: int = 64,
    ) -> None:
        self.out_dim = _check_out_dim(out_dim, allow_none=False)
        self.probability = _check_probability(probability)
        self.seed = _check_seed(seed)
        self.target_field = target_field
        try:
            low, high = (float(c) for c in coupling_range)
        except (TypeError, ValueError) as err:
            raise ParamError(
                f"coupling_range: expected two numbers (low, high), got {coupling_range!r}"
            ) from err
        if not (math.isfinite(low) and math.isfinite(high) and 0 <= low <= high):
            raise ParamError(f"coupling_range: expected finite 0 <= low <= high, got {coupling_range!r}")
        self.coupling_range = (low, high)
        if isinstance(buffer_size, bool) or not isinstance(buffer_size, (int, np.integer)) or buffer_size < 1:
            raise ParamError(f"buffer_size: expected an integer >= 1, got {buffer_size!r}")
        self.buffer_size = int(buffer_size)
        self.rng = np.random.default_rng(self.seed)

    def __call__(self, data_it: Iterable[Entry], is_train: bool) -> Iterator[Entry]:
        waiting: list[tuple[Entry, np.ndarray]] = []  # selected entries and their standardised targets
        for entry in data_it:
            if not is_train or self.rng.random() >= self.probability:
                yield _copy_entry(entry, self.target_field)
                continue
            if SYSTEM_FIELD not in entry:
                raise DataError(f"skew augmentation needs a {SYSTEM_FIELD!r} field in every entry")
            z = standardize(_target_2d(entry, self.target_field)[0])
            partner = next((i for i, (e, _) in enumerate(waiting) if _system(e) != _system(entry)), None)
            if partner is None:
                waiting.append((entry, z))
                if len(waiting) > self.buffer_size:
                    yield _copy_entry(waiting.pop(0)[0], self.target_field)
                continue
            yield self._skew(waiting.pop(partner), (entry, z))
        for entry, _ in waiting:
            yield _copy_entry(entry, self.target_field)

    def _skew(self, first: tuple[Entry, np.ndarray], second: tuple[Entry, np.ndarray]) -> Entry:
        (driver, z_d), (response, z_r) = (first, second) if self.rng.random() < 0.5 else (second, first)
        t = min(z_d.shape[1], z_r.shape[1])
        p_d = self.rng.standard_normal((self.out_dim, z_d.shape[0])) / math.sqrt(z_d.shape[0])
        p_r = self.rng.standard_normal((self.out_dim, z_r.shape[0])) / math.sqrt(z_r.shape[0])
        coupling = self.rng.uniform(*self.coupling_range)
        y = p_r @ z_r[:, :t] + coupling * (p_d @ z_d[:, :t])
        out = dict(response)
        out[self.target_field] = y.astype(np.float32)
        out[SYSTEM_FIELD] = f"{_system(driver)}+{_system(response)}"
        out["skew_systems"] = [_system(driver), _system(response)]
        return out
