"""KernelSynth: synthetic series drawn from Gaussian-process priors with random composite kernels.

This is the synthetic corpus generator of Chronos (Ansari et al. 2024, "Chronos: Learning the Language
of Time Series", Appendix; ``scripts/kernel-synth.py`` of chronos-forecasting). Each series is built by

1. drawing ``j ~ U{1, ..., max_kernels}`` kernels from a fixed bank (with replacement),
2. combining them left to right with a random binary operator, ``+`` or ``*``,
3. drawing one sample from the zero-mean GP prior ``N(0, K)`` with ``K = kernel(X)`` on the grid
   ``X = linspace(0, 1, length)``.

The recipe is the same as Chronos'; the implementation is faster:

* the covariance is built in the *lag domain*: on an evenly spaced grid every stationary kernel of the
  bank depends only on the lag ``|i - j|``, so sums and products of stationary kernels are computed on
  ``length`` lags and expanded to a Toeplitz matrix once (only ``DotProduct`` or unknown kernels need
  a dense evaluation);
* the sample is ``L @ z`` with ``L`` the Cholesky factor of ``K + jitter * I`` (instead of the SVD that
  ``numpy``'s ``multivariate_normal`` runs); numerically low-rank ``K`` (smooth kernels, most of the
  bank's draws) use a pivoted Cholesky truncated at a jitter-sized tolerance, which costs
  ``O(length * rank^2)``; an eigendecomposition is the last resort when ``K`` is too ill-conditioned.
  Every path samples ``N(0, K)`` up to a covariance error of about ``1e-10 * mean(diag K)``.

Every series depends only on ``(seed, index, length, max_kernels)`` through
:func:`tsfmlab.parallel.item_rng`, so corpora are reproducible and independent of the worker count.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence

import numpy as np
import scipy.linalg
import scipy.linalg.blas
import scipy.linalg.lapack
from sklearn.gaussian_process.kernels import (
    RBF,
    ConstantKernel,
    DotProduct,
    ExpSineSquared,
    Kernel,
    Product,
    RationalQuadratic,
    Sum,
    WhiteKernel,
)

from tsfmlab.errors import ParamError
from tsfmlab.parallel import ShardParams, item_rng, parallel_imap, single_thread
from tsfmlab.params import Length, NonNegativeInt, PositiveInt

__all__ = [
    "KernelSynthParams",
    "PERIODICITIES",
    "generate_kernelsynth",
    "generate_series",
    "kernel_bank",
    "prior_covariance",
    "random_kernel",
    "sample_prior",
]


class KernelSynthParams(ShardParams):
    n_series: PositiveInt  # training series
    n_heldout: NonNegativeInt  # held-out slice for evaluation
    length: Length
    max_kernels: PositiveInt
    seed: int


#: Periods (in time steps) of the ExpSineSquared kernels of the Chronos bank, grouped by the sampling
#: frequency whose seasonalities they mimic.
PERIODICITIES: tuple[int, ...] = (
    24, 48, 96, 24 * 7, 48 * 7, 96 * 7,  # H, 0.5H, 0.25H: daily and weekly cycles
    7, 14, 30, 60, 365, 730,  # D
    4, 26, 52,  # W
    4, 6, 12,  # M
    4,  # Q
    40, 10,  # Y
)  # fmt: skip

#: Relative jitters tried, in order, before falling back to an eigendecomposition.
_JITTERS: tuple[float, ...] = (1e-10, 1e-9, 1e-8, 1e-7, 1e-6)


def _check_length(length: int) -> int:
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 2:
        raise ParamError(f"length must be an integer >= 2, got {length!r}")
    return int(length)


def _check_max_kernels(max_kernels: int) -> int:
    if isinstance(max_kernels, bool) or not isinstance(max_kernels, (int, np.integer)) or max_kernels < 1:
        raise ParamError(f"max_kernels must be an integer >= 1, got {max_kernels!r}")
    return int(max_kernels)


@functools.lru_cache(maxsize=16)
def _bank(length: int) -> tuple[Kernel, ...]:
    periodic = [ExpSineSquared(periodicity=p / length) for p in PERIODICITIES]
    return (
        *periodic,
        *(DotProduct(sigma_0=s) for s in (0.0, 1.0, 10.0)),
        *(RBF(length_scale=s) for s in (0.1, 1.0, 10.0)),
        *(RationalQuadratic(alpha=a) for a in (0.1, 1.0, 10.0)),
        *(WhiteKernel(noise_level=s) for s in (0.1, 1.0)),
        ConstantKernel(),
    )


def kernel_bank(length: int) -> list[Kernel]:
    """The Chronos KernelSynth kernel bank for series of ``length`` steps on ``X = linspace(0, 1, length)``.

    21 ``ExpSineSquared`` (periodicities ``PERIODICITIES / length``), 3 ``DotProduct``
    (``sigma_0`` in 0, 1, 10), 3 ``RBF`` (``length_scale`` in 0.1, 1, 10), 3 ``RationalQuadratic``
    (``alpha`` in 0.1, 1, 10), 2 ``WhiteKernel`` (``noise_level`` in 0.1, 1) and one ``ConstantKernel``.
    """
    return list(_bank(_check_length(length)))


def random_kernel(rng: np.random.Generator, bank: Sequence[Kernel], max_kernels: int) -> Kernel:
    """Draw ``j ~ U{1..max_kernels}`` kernels from ``bank`` (with replacement) and fold them with random
    ``+`` / ``*`` operators, left to right."""
    max_kernels = _check_max_kernels(max_kernels)
    if len(bank) == 0:
        raise ParamError("bank must hold at least one kernel")
    n_kernels = int(rng.integers(1, max_kernels + 1))
    picks = rng.integers(0, len(bank), size=n_kernels)
    products = rng.integers(0, 2, size=n_kernels - 1).astype(bool)
    kernel = bank[picks[0]]
    for pick, is_product in zip(picks[1:], products, strict=True):
        kernel = kernel * bank[pick] if is_product else kernel + bank[pick]
    return kernel


def _scalar(value: object) -> float | None:
    """A kernel hyperparameter as a float, or None if it is not a scalar (e.g. anisotropic)."""
    arr = np.asarray(value, dtype=float)
    return float(arr) if arr.size == 1 else None


def _stationary_lags(kernel: Kernel, lags: np.ndarray) -> np.ndarray | None:
    """``k(lag)`` for the bank's stationary kernels on grid lags, or None if ``kernel`` is not one.

    Formulas are those of scikit-learn's kernels evaluated at ``d = |x_i - x_j|``.
    """
    if isinstance(kernel, RBF):
        ls = _scalar(kernel.length_scale)
        return None if ls is None else np.exp(-0.5 * (lags / ls) ** 2)
    if isinstance(kernel, RationalQuadratic):
        base = 1.0 + lags**2 / (2.0 * kernel.alpha * kernel.length_scale**2)
        return base ** (-kernel.alpha)
    if isinstance(kernel, ExpSineSquared):
        sin = np.sin(np.pi * lags / kernel.periodicity) / kernel.length_scale
        return np.exp(-2.0 * sin**2)
    if isinstance(kernel, ConstantKernel):
        value = _scalar(kernel.constant_value)
        return None if value is None else np.full(lags.shape, value)
    if isinstance(kernel, WhiteKernel):  # k(X) = noise * I for distinct points: a lag-0 delta
        out = np.zeros(lags.shape)
        out[0] = kernel.noise_level
        return out
    return None


def _lag_or_dense(kernel: Kernel, x: np.ndarray) -> tuple[bool, np.ndarray]:
    """``(is_lag, values)``: the first Toeplitz column if ``kernel`` is stationary on the grid ``x``
    (``x[0] == 0``, evenly spaced, so ``x`` doubles as the lags), else the dense ``kernel(X)``."""
    if isinstance(kernel, (Sum, Product)):
        lag1, v1 = _lag_or_dense(kernel.k1, x)
        lag2, v2 = _lag_or_dense(kernel.k2, x)
        if lag1 != lag2:  # bring both to dense matrices
            v1 = scipy.linalg.toeplitz(v1) if lag1 else v1
            v2 = scipy.linalg.toeplitz(v2) if lag2 else v2
        return lag1 and lag2, (v1 + v2 if isinstance(kernel, Sum) else v1 * v2)
    lags = _stationary_lags(kernel, x)
    if lags is not None:
        return True, lags
    if isinstance(kernel, DotProduct):
        dense = np.multiply.outer(x, x)
        dense += kernel.sigma_0**2
        return False, dense
    return False, np.asarray(kernel(x[:, None]), dtype=np.float64)  # any other kernel: sklearn's own


def _covariance_values(kernel: Kernel, length: int) -> tuple[bool, np.ndarray]:
    is_lag, values = _lag_or_dense(kernel, np.linspace(0.0, 1.0, length))
    if not np.all(np.isfinite(values)):
        raise ValueError(f"kernel {kernel} has a non-finite covariance at length {length}")
    return is_lag, values


def prior_covariance(kernel: Kernel, length: int) -> np.ndarray:
    """``kernel(X[:, None])`` on ``X = linspace(0, 1, length)`` (float64, ``(length, length)``).

    Equal to scikit-learn's evaluation up to rounding, but built in the lag domain where possible.
    """
    is_lag, values = _covariance_values(kernel, _check_length(length))
    return scipy.linalg.toeplitz(values) if is_lag else values


def _pivoted_factor(cov: np.ndarray, tol: float) -> np.ndarray | None:
    """``A`` (``n x rank``) with ``A @ A.T == cov - S``, by Cholesky with complete pivoting stopped once
    every remaining pivot is below ``tol``; ``S`` is the PSD Schur complement left over, so
    ``||S||_2 <= trace(S) < n * tol``. None if LAPACK refuses or the residual is not at that level."""
    n = cov.shape[0]
    chol, piv, rank, info = scipy.linalg.lapack.dpstrf(cov.T, tol=tol, lower=1)  # cov.T: F-order view
    if info < 0 or rank < 1:
        return None
    factor = np.empty((n, rank))
    factor[piv - 1] = np.tril(chol[:, :rank])
    residual_diag = np.diagonal(cov) - np.einsum("ij,ij->i", factor, factor)
    return factor if np.abs(residual_diag).max() <= 10 * tol else None


def _looks_low_rank(cov: np.ndarray, tol: float, probe: int = 128) -> bool:
    """Cheap guess (a pivoted Cholesky of an evenly subsampled ``cov``) of whether ``cov`` has a
    numerical rank well below its size, where the pivoted factorisation is far cheaper than a full one.
    Only decides speed, never the distribution."""
    step = max(1, cov.shape[0] // probe)
    sub = np.asfortranarray(cov[::step, ::step])
    rank = scipy.linalg.lapack.dpstrf(sub, tol=tol, lower=1, overwrite_a=1)[2]
    return rank <= sub.shape[0] // 2


def _factor(cov: np.ndarray) -> tuple[np.ndarray, bool]:
    """``(A, lower)`` with ``A @ A.T == cov`` up to a tiny jitter/truncation; if ``lower``, ``A`` is
    square and only its lower triangle is meaningful (the rest is left unclean for speed).

    1. numerically low-rank ``cov``: pivoted Cholesky truncated at ``1e-12 * mean(diag)`` (error
       ``||S||_2 < n * 1e-12 * mean(diag)``, i.e. at most ``1e-9`` relative at length 1024);
    2. Cholesky of ``cov + jitter * I``, ``jitter = 1e-10 * mean(diag)``, tenfold up to ``1e-6``;
    3. eigendecomposition ``cov = V diag(w) V^T``, negative ``w`` clipped to 0: ``A = V sqrt(w)``.
    """
    n = cov.shape[0]
    mean_diag = float(np.mean(np.diagonal(cov)))
    scale = mean_diag if mean_diag > 0 else 1.0
    tol = 1e-12 * scale
    if _looks_low_rank(cov, tol):
        factor = _pivoted_factor(cov, tol)
        if factor is not None:
            return factor, False
    for rel in _JITTERS:
        work = cov.copy()
        work.flat[:: n + 1] += rel * scale
        # work.T is an F-ordered view of the symmetric matrix: LAPACK factors it in place, no copy.
        chol, info = scipy.linalg.lapack.dpotrf(work.T, lower=1, clean=0, overwrite_a=1)
        if info == 0:
            return chol, True
    eigval, eigvec = scipy.linalg.eigh(cov, check_finite=False)
    eigvec *= np.sqrt(np.clip(eigval, 0.0, None))
    return eigvec, False


def sample_prior(kernel: Kernel, length: int, rng: np.random.Generator) -> np.ndarray:
    """One draw (float32, shape ``(length,)``) of the zero-mean GP prior ``N(0, K)``,
    ``K = kernel(X[:, None])`` with ``X = linspace(0, 1, length)``.

    ``A @ z`` with ``z`` standard normal and ``A @ A.T = K`` up to a tiny jitter: the Cholesky factor
    of ``K + jitter * I`` (jitter from ``1e-10 * mean(diag K)``, tenfold on failure up to ``1e-6``);
    when ``K`` is numerically low-rank (smooth kernels), a pivoted Cholesky factor truncated at
    ``1e-12 * mean(diag K)``, much faster; as a last resort an eigendecomposition with negative
    eigenvalues clipped to 0. See :func:`_factor`.
    """
    factor, lower = _factor(prior_covariance(kernel, length))
    z = rng.standard_normal(factor.shape[1])
    sample = scipy.linalg.blas.dtrmv(factor, z, lower=1) if lower else factor @ z
    return sample.astype(np.float32)


def generate_series(index: int, seed: int, length: int, max_kernels: int) -> np.ndarray:
    """The KernelSynth series of global item ``index`` (float32, ``(length,)``).

    Both the kernel and the GP draw come from ``item_rng(seed, index)``, and BLAS runs on one thread
    (its rounding depends on the thread count), so the result depends only on
    ``(seed, index, length, max_kernels)``.
    """
    length = _check_length(length)
    max_kernels = _check_max_kernels(max_kernels)
    rng = item_rng(seed, index)
    kernel = random_kernel(rng, _bank(length), max_kernels)
    with single_thread():
        return sample_prior(kernel, length, rng)


def iter_kernelsynth(
    indices: Sequence[int], seed: int, length: int, max_kernels: int, n_jobs: int = 1
) -> Iterator[np.ndarray]:
    """``generate_series(i, seed, length, max_kernels) for i in indices`` over ``n_jobs`` processes
    (``n_jobs <= 0``: all cores), in order, a few batches in flight: the output does not depend on
    ``n_jobs`` and memory does not grow with the number of series."""
    length = _check_length(length)
    max_kernels = _check_max_kernels(max_kernels)
    fn = functools.partial(generate_series, seed=seed, length=length, max_kernels=max_kernels)
    return parallel_imap(fn, indices, n_jobs=n_jobs, desc="kernelsynth")


def generate_kernelsynth(
    indices: Sequence[int], seed: int, length: int, max_kernels: int, n_jobs: int = 1
) -> list[np.ndarray]:
    """``list(iter_kernelsynth(...))``."""
    return list(iter_kernelsynth(indices, seed, length, max_kernels, n_jobs))
