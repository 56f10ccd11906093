"""Chaotic trajectories from the ``dysts`` catalogue, with perturbations, a system split and filters.

For every system of a split, ``n_param_perturbations`` parameter draws × ``n_initial_conditions``
initial conditions are integrated with an explicit high-order solver (DOP853 by default: dysts' own
default, Radau at 1e-12, is far slower for a trajectory that agrees to ~1e-6 of the attractor's spread)
on dysts' own time grid (``pts_per_period`` points per dominant period), the transient is discarded and
each trajectory is kept only if it passes :mod:`tsfmlab.data.validity`.

Randomness is per item: the parameter draw depends on (seed, system, perturbation index) and the
initial condition additionally on its own index, so outputs do not depend on worker count, shard
count or on which other systems were requested.
"""

from __future__ import annotations

import difflib
import json
import time
import warnings
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
from pydantic import model_validator

from ..errors import DataError, ParamError
from ..parallel import ShardParams, item_rng, parallel_imap
from ..params import (
    Invalid,
    Length,
    NonNegativeFloat,
    NonNegativeInt,
    OpenUnit,
    PositiveFloat,
    PositiveInt,
)
from .validity import REASONS, FilterParams, rejection_reason

Method = Literal["DOP853", "RK45", "RK23", "Radau", "BDF", "LSODA"]


class DystsParams(ShardParams):
    systems: Literal["all"] | list[str]  # "all" or an explicit list
    exclude_systems: list[str]  # removed from `systems` (e.g. ones whose right-hand side is very slow)
    include_delay_systems: bool
    train_systems: list[str] | None  # explicit split (both lists), overriding test_fraction
    test_systems: list[str] | None
    test_fraction: OpenUnit
    split_seed: int
    n_param_perturbations: PositiveInt
    n_initial_conditions: PositiveInt
    keep_default_params: bool  # perturbation 0 uses dysts' published parameters
    param_scale: NonNegativeFloat  # relative std of parameter perturbations
    ic_scale: NonNegativeFloat  # relative std of initial-condition perturbations
    length: Length
    transient: NonNegativeInt
    pts_per_period: PositiveInt
    method: Method
    rtol: PositiveFloat
    atol: PositiveFloat
    max_steps: PositiveInt  # solver step budget per trajectory
    seed: int
    filters: FilterParams

    @model_validator(mode="after")
    def _split_given_whole(self) -> Self:
        if (self.train_systems is None) != (self.test_systems is None):
            raise Invalid(
                "and test_systems go together (both lists, or both null)", "train_systems", ("test_systems",)
            )
        return self


def available_systems(include_delay: bool) -> list[str]:
    from dysts.systems import get_attractor_list

    return sorted(get_attractor_list(sys_class="continuous" if include_delay else "continuous_no_delay"))


def _check_names(names: list[str], known: list[str], param: str) -> None:
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ParamError(f"param {param}: unknown dysts system {name!r}{hint}")
    dupes = [n for n, c in Counter(names).items() if c > 1]
    if dupes:
        raise ParamError(f"param {param}: systems listed twice: {', '.join(dupes)}")


def split_systems(p: DystsParams, section: str = "generate_dysts") -> dict[str, list[str]]:
    """The train/test split of *systems* (never of samples of one system)."""
    known = available_systems(p.include_delay_systems)
    if p.train_systems is not None and p.test_systems is not None:
        _check_names(p.train_systems, known, f"{section}.train_systems")
        _check_names(p.test_systems, known, f"{section}.test_systems")
        overlap = sorted(set(p.train_systems) & set(p.test_systems))
        if overlap:
            raise ParamError(f"params {section}.train_systems and test_systems overlap: {', '.join(overlap)}")
        return {"train": sorted(p.train_systems), "test": sorted(p.test_systems)}
    systems = known if p.systems == "all" else list(p.systems)
    _check_names(systems, known, f"{section}.systems")
    _check_names(p.exclude_systems, known, f"{section}.exclude_systems")
    systems = sorted(set(systems) - set(p.exclude_systems))
    n_test = int(round(p.test_fraction * len(systems)))
    if n_test == 0 or n_test == len(systems):
        raise ParamError(
            f"param {section}.test_fraction={p.test_fraction} leaves an empty split of "
            f"{len(systems)} systems; list more systems or change the fraction"
        )
    order = np.random.default_rng(p.split_seed).permutation(len(systems))
    test = sorted(systems[i] for i in order[:n_test])
    train = sorted(systems[i] for i in order[n_test:])
    return {"train": train, "test": test}


def system_key(name: str) -> int:
    """A stable integer for a system name (independent of which other systems are listed)."""
    return zlib.crc32(name.encode())


@dataclass(frozen=True)
class Item:
    split: str
    system: str
    param_index: int
    ic_index: int
    global_index: int


def plan_items(p: DystsParams, splits: dict[str, list[str]]) -> list[Item]:
    """All samples in a fixed global order; a shard owns every ``num_shards``-th one."""
    items = []
    for split in ("train", "test"):
        for system in splits[split]:
            for pi in range(p.n_param_perturbations):
                for ii in range(p.n_initial_conditions):
                    items.append(Item(split, system, pi, ii, len(items)))
    return [it for it in items if it.global_index % p.num_shards == p.shard_index]


class _StepBudget:
    """A terminal solve_ivp event that stops integration after ``max_steps`` solver steps.

    Deterministic, unlike a wall-clock limit, so a rejected trajectory is rejected on every machine.
    """

    terminal = True

    def __init__(self, max_steps: int):
        self.max_steps = max_steps
        self.calls = 0

    def __call__(self, t: float, y: np.ndarray) -> float:
        self.calls += 1
        return 1.0 if self.calls <= self.max_steps else 0.0


def make_system(name: str, include_delay: bool = False):
    import dysts.flows

    return getattr(dysts.flows, name)()


def perturb_system(model, rng: np.random.Generator, scale: float):
    """Relative Gaussian perturbation of every parameter (dysts' SignedGaussianParamSampler)."""
    from dysts.sampling import SignedGaussianParamSampler

    sampler = SignedGaussianParamSampler(scale=scale)
    sampler.set_rng(rng)
    model.transform_params(sampler)
    return model


def initial_condition(model, rng: np.random.Generator, scale: float) -> np.ndarray:
    """The published initial condition, perturbed by relative and absolute Gaussian noise."""
    ic = np.asarray(model.ic, dtype=np.float64)
    return ic * (1.0 + scale * rng.standard_normal(ic.shape)) + scale * rng.standard_normal(ic.shape)


def integrate(
    model,
    ic: np.ndarray,
    n: int,
    pts_per_period: int,
    method: str,
    rtol: float,
    atol: float,
    max_steps: int | None = None,
) -> tuple[np.ndarray | None, str | None]:
    """Integrate ``n`` points on dysts' grid; returns ((n, D) trajectory, None) or (None, reason)."""
    kwargs: dict[str, Any] = {}
    budget = None
    if max_steps is not None and not hasattr(model, "tau"):
        budget = _StepBudget(max_steps)
        kwargs["events"] = [budget]
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            if hasattr(model, "tau"):  # delay systems integrate with their own fixed-step scheme
                traj = model.make_trajectory(n, init_cond=ic, pts_per_period=pts_per_period)
            else:
                traj = model.make_trajectory(
                    n,
                    init_cond=ic,
                    pts_per_period=pts_per_period,
                    method=method,
                    rtol=rtol,
                    atol=atol,
                    **kwargs,
                )
    except Exception:  # dysts/scipy raise many kinds of errors on blown-up systems
        return None, "integration_failed"
    if budget is not None and budget.calls > budget.max_steps:
        return None, "step_budget"
    if traj is None:
        return None, "integration_failed"
    traj = np.asarray(traj, dtype=np.float64)
    if traj.ndim == 1:
        traj = traj[:, None]
    if traj.shape[0] != n:
        return None, "integration_failed"
    return traj, None


def _jsonable(params: dict[str, Any]) -> str:
    return json.dumps({k: np.asarray(v).tolist() for k, v in sorted(params.items())}, sort_keys=True)


def generate_system(
    items: list[Item], p: DystsParams
) -> list[tuple[Item, dict[str, Any] | None, str | None]]:
    """Integrate every item of one system (one task: numba compiles the system once per worker)."""
    results = []
    for it in items:
        key = system_key(it.system)
        model = make_system(it.system, p.include_delay_systems)
        meta = {"period": float(model.period or np.nan), "lyapunov": model.maximum_lyapunov_estimated}
        if it.param_index > 0 or not p.keep_default_params:
            perturb_system(model, item_rng(p.seed, key, it.param_index), p.param_scale)
        ic_rng = item_rng(p.seed, key, it.param_index, it.ic_index, 1)
        ic = initial_condition(model, ic_rng, p.ic_scale)
        traj, reason = integrate(
            model, ic, p.transient + p.length, p.pts_per_period, p.method, p.rtol, p.atol, p.max_steps
        )
        if traj is not None:
            traj = traj[p.transient :]
            reason = rejection_reason(traj, p.filters, ic_rng)
        if reason is not None:
            results.append((it, None, reason))
            continue
        entry = {
            "target": traj.T.astype(np.float32),  # (D, T)
            "system": it.system,
            "split": it.split,
            "sample_index": it.global_index,
            "param_index": it.param_index,
            "ic_index": it.ic_index,
            "params": _jsonable(model.params),
            "initial_condition": ic.tolist(),
            "dt": float(meta["period"] / p.pts_per_period),
            "period": meta["period"],
            "max_lyapunov": float(meta["lyapunov"]) if meta["lyapunov"] is not None else float("nan"),
        }
        results.append((it, entry, None))
    return results


@dataclass
class DystsCorpus:
    splits: dict[str, list[str]]
    accepted: dict[str, int]
    systems_kept: dict[str, set[str]]
    rejections: dict[str, dict[str, int]]
    requested: dict[str, int]
    seconds: float
    entries: dict[str, list[dict[str, Any]]] | None = None  # when no sink took them

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for split in ("train", "test"):
            accepted = self.accepted[split]
            out[split] = {
                "systems": len(self.splits[split]),
                "systems_with_samples": len(self.systems_kept[split]),
                "requested": self.requested[split],
                "accepted": accepted,
                "acceptance_rate": accepted / max(1, self.requested[split]),
                "rejected": dict(self.rejections[split]),
            }
        return out  # wall-clock time is printed by the stage, not stored: metrics must be reproducible


def generate_dysts(
    p: DystsParams,
    n_jobs: int = 1,
    section: str = "generate_dysts",
    sink: Callable[[str, dict[str, Any]], None] | None = None,
) -> DystsCorpus:
    """Integrate, filter and split the trajectories of ``p``, in their global order.

    Each accepted entry goes to ``sink(split, entry)`` as soon as the systems before it are done (a
    few systems per worker are in flight), so memory does not grow with the corpus; without a sink
    the entries are kept in ``DystsCorpus.entries``."""
    splits = split_systems(p, section)  # validates names before any integration
    items = plan_items(p, splits)
    by_system: dict[str, list[Item]] = {}
    for it in items:
        by_system.setdefault(it.system, []).append(it)  # systems in global order
    kept: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
    keep = sink is None
    if keep:
        sink = lambda split, entry: kept[split].append(entry)  # noqa: E731
    accepted = {"train": 0, "test": 0}
    systems_kept: dict[str, set[str]] = {"train": set(), "test": set()}
    rejections = {s: dict.fromkeys(REASONS, 0) for s in ("train", "test")}
    requested = {"train": 0, "test": 0}
    t0 = time.perf_counter()
    results = parallel_imap(
        partial(generate_system, p=p), list(by_system.values()), n_jobs=n_jobs, desc="dysts systems"
    )
    for group in results:
        for it, entry, reason in sorted(group, key=lambda r: r[0].global_index):
            requested[it.split] += 1
            if entry is not None:
                accepted[it.split] += 1
                systems_kept[it.split].add(entry["system"])
                sink(it.split, entry)
            else:
                rejections[it.split][reason] += 1
    seconds = time.perf_counter() - t0
    return DystsCorpus(splits, accepted, systems_kept, rejections, requested, seconds, kept if keep else None)


def held_out_systems(dysts_dir: str | Path) -> set[str]:
    """The test systems named in ``systems.json`` of a generate_dysts output directory."""
    systems_file = Path(dysts_dir) / "systems.json"
    try:
        return set(json.loads(systems_file.read_text())["test"])
    except (OSError, ValueError, KeyError) as err:
        raise DataError(f"{systems_file}: missing or unreadable system split ({err})") from err


def training_channels(dysts_dir: str | Path):
    """Every channel of every *train* trajectory (a :class:`tsfmlab.data.corpus.Corpus` on disk,
    a sequence of float32 series), refusing any held-out system.

    Training corpora derived from dysts go through here, so a held-out attractor cannot leak into them.
    """
    from .corpus import Corpus

    dysts_dir = Path(dysts_dir)
    held_out = held_out_systems(dysts_dir)
    corpus = Corpus(dysts_dir / "train")
    for system, split in zip(corpus.column("system"), corpus.column("split")):
        if system in held_out or split != "train":
            raise DataError(f"{dysts_dir / 'train'}: held-out system {system!r} found in training data")
    return corpus
