"""Tests of the KernelSynth generator (tsfmlab.data.kernelsynth)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.gaussian_process.kernels import (
    RBF,
    ConstantKernel,
    DotProduct,
    ExpSineSquared,
    RationalQuadratic,
    WhiteKernel,
)

from tsfmlab.data.kernelsynth import (
    _factor,
    generate_kernelsynth,
    generate_series,
    kernel_bank,
    prior_covariance,
    random_kernel,
    sample_prior,
)
from tsfmlab.errors import ParamError
from tsfmlab.parallel import item_rng

LENGTH = 128


def test_bank_size_and_kinds():
    bank = kernel_bank(1024)
    kinds = [type(k) for k in bank]
    assert len(bank) == 33
    assert kinds.count(ExpSineSquared) == 21
    assert kinds.count(DotProduct) == 3
    assert kinds.count(RBF) == 3
    assert kinds.count(RationalQuadratic) == 3
    assert kinds.count(WhiteKernel) == 2
    assert kinds.count(ConstantKernel) == 1
    periods = sorted(k.periodicity * 1024 for k in bank if isinstance(k, ExpSineSquared))
    assert periods[0] == pytest.approx(4) and periods[-1] == pytest.approx(730)
    assert sorted(k.sigma_0 for k in bank if isinstance(k, DotProduct)) == [0.0, 1.0, 10.0]
    assert sorted(k.noise_level for k in bank if isinstance(k, WhiteKernel)) == [0.1, 1.0]


def test_random_kernel_uses_at_most_max_kernels():
    bank = kernel_bank(LENGTH)
    for i in range(50):
        kernel = random_kernel(item_rng(0, i), bank, 3)
        n_leaves = _n_leaves(kernel)
        assert 1 <= n_leaves <= 3


def _n_leaves(kernel) -> int:
    return _n_leaves(kernel.k1) + _n_leaves(kernel.k2) if hasattr(kernel, "k1") else 1


def test_covariance_matches_sklearn():
    bank = kernel_bank(LENGTH)
    x = np.linspace(0, 1, LENGTH)[:, None]
    for i in range(30):
        kernel = random_kernel(item_rng(1, i), bank, 5)
        np.testing.assert_allclose(prior_covariance(kernel, LENGTH), kernel(x), rtol=1e-9, atol=1e-12)


def test_deterministic_and_index_dependent():
    a = generate_series(3, seed=7, length=LENGTH, max_kernels=5)
    b = generate_series(3, seed=7, length=LENGTH, max_kernels=5)
    c = generate_series(4, seed=7, length=LENGTH, max_kernels=5)
    d = generate_series(3, seed=8, length=LENGTH, max_kernels=5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, d)


def test_shapes_dtype_finite():
    for i, series in enumerate(generate_kernelsynth(range(20), seed=0, length=LENGTH, max_kernels=5)):
        assert series.shape == (LENGTH,), i
        assert series.dtype == np.float32
        assert np.all(np.isfinite(series))
    assert generate_series(0, seed=0, length=2, max_kernels=1).shape == (2,)


def test_worker_count_independent():
    indices = [0, 5, 1, 9, 2, 11]
    serial = generate_kernelsynth(indices, seed=42, length=LENGTH, max_kernels=5, n_jobs=1)
    parallel = generate_kernelsynth(indices, seed=42, length=LENGTH, max_kernels=5, n_jobs=2)
    assert len(serial) == len(parallel) == len(indices)
    for s, p, i in zip(serial, parallel, indices, strict=True):
        np.testing.assert_array_equal(s, p)
        np.testing.assert_array_equal(s, generate_series(i, 42, LENGTH, 5))


def test_factor_paths_reproduce_covariance():
    # Full rank (jittered Cholesky) and numerically low rank (truncated pivoted Cholesky).
    cases = {
        True: RBF(0.1) * ExpSineSquared(periodicity=0.05) + WhiteKernel(0.1),
        False: RBF(1.0) + DotProduct(0.0) * ConstantKernel(2.0),
    }
    for length in (64, 512):
        for expect_lower, kernel in cases.items():
            cov = prior_covariance(kernel, length)
            factor, lower = _factor(cov)
            assert lower is expect_lower
            factor = np.tril(factor) if lower else factor
            err = np.linalg.norm(factor @ factor.T - cov, 2) / np.mean(np.diag(cov))
            assert err < 1e-8, (length, kernel, err)


@pytest.mark.parametrize(
    "kernel",
    [RBF(0.1), RBF(0.1) + WhiteKernel(0.1) * DotProduct(1.0), RBF(0.3) + DotProduct(0.0)],
)
def test_sample_covariance(kernel):
    length, n_samples = 32, 3000
    rng = np.random.default_rng(0)
    samples = np.stack([sample_prior(kernel, length, rng) for _ in range(n_samples)]).astype(np.float64)
    emp = samples.T @ samples / n_samples  # zero-mean prior
    true = kernel(np.linspace(0, 1, length)[:, None])
    # Entry-wise sd of the empirical covariance is sqrt((K_ii K_jj + K_ij^2) / N).
    sd = np.sqrt((np.outer(np.diag(true), np.diag(true)) + true**2) / n_samples)
    assert np.max(np.abs(emp - true) / sd) < 5.0
    assert np.abs(samples.mean(axis=0)).max() < 5 * np.sqrt(np.diag(true).max() / n_samples)


def test_singular_kernel_falls_back_and_is_faithful():
    # ConstantKernel is rank one: every draw must be (numerically) a constant series.
    series = sample_prior(ConstantKernel(4.0), 64, np.random.default_rng(0))
    assert np.ptp(series) < 1e-3 * max(1.0, abs(float(series[0])))


@pytest.mark.parametrize("length", [1, 0, -5, 2.5, True])
def test_bad_length(length):
    with pytest.raises(ParamError, match="length"):
        generate_series(0, seed=0, length=length, max_kernels=3)
    with pytest.raises(ParamError, match="length"):
        kernel_bank(length)
    with pytest.raises(ParamError, match="length"):
        generate_kernelsynth([0], seed=0, length=length, max_kernels=3)


@pytest.mark.parametrize("max_kernels", [0, -1, 1.5])
def test_bad_max_kernels(max_kernels):
    with pytest.raises(ParamError, match="max_kernels"):
        generate_series(0, seed=0, length=16, max_kernels=max_kernels)
    with pytest.raises(ParamError, match="max_kernels"):
        random_kernel(np.random.default_rng(0), kernel_bank(16), max_kernels)
    with pytest.raises(ParamError, match="max_kernels"):
        generate_kernelsynth([0], seed=0, length=16, max_kernels=max_kernels)
