"""UCR/UEA classification datasets: read by name, made equal-length and complete, split, saved.

A name is looked up, in order, in a local archive directory (``<dir>/<Name>/<Name>_TRAIN.{ts,tsv,arff}``,
the layout of the UCR 2018 and UEA archives), among the datasets aeon bundles (available offline), and,
only when downloads are allowed, on the tsml Zenodo mirror through aeon. A prepared dataset is one
safetensors file holding the train, validation (stratified, seeded, carved from TRAIN) and test arrays as
``(cases, channels, length)`` float32 plus integer labels; the class names are in its metadata.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import DataError, ParamError
from ..io.atomic import atomic_file

SPLITS = ("train", "val", "test")
LengthPolicy = Literal["error", "pad", "truncate", "resample"]
MissingPolicy = Literal["error", "interpolate"]


@dataclass
class RawSplit:
    """One split as read: a list of ``(channels, length_i)`` float64 arrays and string labels."""

    X: list[np.ndarray]
    y: np.ndarray
    path: str  # where it came from, for error messages


@functools.cache
def bundled_datasets() -> list[str]:
    """Classification datasets that ship inside aeon (no download needed)."""
    import aeon.datasets

    root = Path(aeon.datasets.__file__).parent / "data"
    return sorted(
        d.name
        for d in root.iterdir()
        if (d / f"{d.name}_TRAIN.ts").is_file() and (d / f"{d.name}_TEST.ts").is_file() and _has_labels(d)
    )


def _has_labels(d: Path) -> bool:
    with open(d / f"{d.name}_TRAIN.ts", errors="replace") as f:
        for line in f:
            if line.lower().startswith("@classlabel"):
                return "true" in line.lower()
            if line.lower().startswith("@data"):
                return False
    return False


def _as_cases(X) -> list[np.ndarray]:
    if isinstance(X, np.ndarray):
        X = X if X.ndim == 3 else X[:, None, :]
        return [np.asarray(x, dtype=np.float64) for x in X]
    return [np.atleast_2d(np.asarray(x, dtype=np.float64)) for x in X]


def read_tsv(path: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """A UCR 2018 ``.tsv``: label first, then the values; shorter series are NaN-padded at the end."""
    rows, labels = [], []
    with open(path) as f:
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 2:
                raise DataError(
                    f"{path}: line {i} has no values (expected a label then tab-separated values)"
                )
            try:
                values = np.array([float(v) if v.strip() else np.nan for v in fields[1:]])
            except ValueError as err:
                raise DataError(f"{path}: line {i}: {err}") from err
            last = np.flatnonzero(np.isfinite(values))
            values = values[: last[-1] + 1] if len(last) else values[:0]
            rows.append(values[None, :])
            labels.append(fields[0].strip())
    if not rows:
        raise DataError(f"{path}: no cases")
    return rows, np.array(labels)


def _read_file(path: Path) -> tuple[list[np.ndarray], np.ndarray]:
    from aeon.datasets import load_from_arff_file, load_from_ts_file

    try:
        if path.suffix == ".tsv":
            return read_tsv(path)
        loader = load_from_ts_file if path.suffix == ".ts" else load_from_arff_file
        X, y = loader(str(path))
    except DataError:
        raise
    except Exception as err:  # aeon raises IOError/ValueError/IndexError on malformed files
        raise DataError(f"{path}: malformed {path.suffix} file ({type(err).__name__}: {err})") from err
    return _as_cases(X), np.asarray(y).astype(str)


def find_local(name: str, split: str, local_dir: str | Path) -> Path | None:
    for ext in (".ts", ".tsv", ".arff"):
        path = Path(local_dir) / name / f"{name}_{split.upper()}{ext}"
        if path.is_file():
            return path
    return None


def read_split(
    name: str, split: Literal["train", "test"], local_dir: str | None, download: bool, cache_dir: str
) -> RawSplit:
    """Read TRAIN or TEST of ``name``: local archive, then aeon's bundled data, then (if allowed) Zenodo."""
    if local_dir is not None:
        path = find_local(name, split, local_dir)
        if path is not None:
            X, y = _read_file(path)
            return RawSplit(X, y, str(path))
    from aeon.datasets import load_classification

    if name in bundled_datasets():
        X, y = load_classification(name, split=split)
        return RawSplit(_as_cases(X), np.asarray(y).astype(str), f"aeon bundled {name}_{split.upper()}")
    if not download:
        where = (
            f"not in local_dir {local_dir!r} (expected {name}/{name}_TRAIN.ts|.tsv|.arff)"
            if local_dir
            else ""
        )
        raise ParamError(
            f"unknown dataset {name!r}: {where + '; ' if where else ''}not bundled with aeon "
            f"(offline: {', '.join(bundled_datasets())}). Point prepare_ucr.local_dir at a UCR/UEA archive "
            f"directory, or set prepare_ucr.download: true where the internet is reachable."
        )
    try:
        X, y = load_classification(name, split=split, extract_path=cache_dir)
    except Exception as err:
        raise ParamError(f"dataset {name!r}: download failed ({err})") from err
    return RawSplit(_as_cases(X), np.asarray(y).astype(str), f"{cache_dir}/{name}")


def fill_missing(cases: list[np.ndarray], policy: MissingPolicy, where: str) -> list[np.ndarray]:
    """NaNs inside a series: refuse, or interpolate linearly (edges take the nearest value)."""
    out = []
    for i, x in enumerate(cases):
        if x.shape[-1] == 0 or not np.isfinite(x).any(axis=-1).all():
            raise DataError(f"{where}: case {i} has a channel with no finite value (NaN-only or empty)")
        if np.isfinite(x).all():
            out.append(x)
            continue
        if policy == "error":
            raise DataError(
                f"{where}: case {i} has missing values; set prepare_ucr.missing: interpolate to fill them"
            )
        t = np.arange(x.shape[-1])
        filled = np.empty_like(x)
        for c, row in enumerate(x):
            ok = np.isfinite(row)
            filled[c] = np.interp(t, t[ok], row[ok])
        out.append(filled)
    return out


def equal_length(cases: list[np.ndarray], policy: LengthPolicy, length: int | None, where: str) -> np.ndarray:
    """Stack cases into ``(n, channels, length)``; ``length`` None means the longest (pad/resample) or
    the shortest (truncate) case of this split. Pad repeats the last value; truncate keeps the start."""
    channels = {x.shape[0] for x in cases}
    if len(channels) != 1:
        raise DataError(f"{where}: cases have different numbers of channels {sorted(channels)}")
    lengths = np.array([x.shape[-1] for x in cases])
    if length is None:
        length = int(lengths.min() if policy == "truncate" else lengths.max())
    if (lengths == length).all():
        return np.stack(cases)
    if policy == "error":
        raise DataError(
            f"{where}: unequal lengths ({lengths.min()}-{lengths.max()}, expected {length}); set "
            "prepare_ucr.unequal_length to pad, truncate or resample"
        )
    out = np.empty((len(cases), cases[0].shape[0], length))
    for i, x in enumerate(cases):
        n = x.shape[-1]
        if policy == "resample" and n != length:
            src = np.linspace(0.0, 1.0, n)
            dst = np.linspace(0.0, 1.0, length)
            out[i] = np.stack([np.interp(dst, src, row) for row in x])
        elif n >= length:
            out[i] = x[:, :length]
        else:
            out[i] = np.concatenate([x, np.repeat(x[:, -1:], length - n, axis=1)], axis=1)
    return out


def class_names(labels: np.ndarray) -> list[str]:
    """Sorted class names: numerically when every label is a number (UCR's '-1', '1', '10'), else as text."""
    unique = sorted(set(labels.tolist()))
    try:
        return sorted(unique, key=float)
    except ValueError:
        return unique


def encode_labels(labels: np.ndarray, classes: list[str], where: str) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(labels.tolist()) - set(index))
    if unknown:
        raise DataError(f"{where}: label(s) {unknown} do not occur in TRAIN (classes {classes})")
    return np.array([index[v] for v in labels], dtype=np.int64)


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): per class, ``round(fraction * n)`` cases go to validation, at least one when
    the class has two or more and never the last one. Seeded and independent of anything but ``y``."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_val = int(np.floor(fraction * len(idx) + 0.5))
        n_val = min(max(n_val, 1 if len(idx) >= 2 else 0), len(idx) - 1)
        val.extend(idx[:n_val].tolist())
        train.extend(idx[n_val:].tolist())
    return np.sort(np.array(train, dtype=np.int64)), np.sort(np.array(val, dtype=np.int64))


@dataclass
class PreparedDataset:
    name: str
    arrays: dict[str, np.ndarray]  # x_train, y_train, x_val, y_val, x_test, y_test
    classes: list[str]
    sources: dict[str, str]

    @property
    def info(self) -> dict:
        x = self.arrays["x_train"]
        return {
            "n_train": len(x),
            "n_val": len(self.arrays["x_val"]),
            "n_test": len(self.arrays["x_test"]),
            "n_classes": len(self.classes),
            "n_channels": x.shape[1],
            "length": x.shape[2],
        }


def prepare(
    name: str,
    local_dir: str | None,
    download: bool,
    cache_dir: str,
    unequal_length: LengthPolicy,
    missing: MissingPolicy,
    val_fraction: float,
    seed: int,
) -> PreparedDataset:
    """Read, clean and split one dataset. TEST is made equal-length to TRAIN's length."""
    raw = {s: read_split(name, s, local_dir, download, cache_dir) for s in ("train", "test")}
    cases = {s: fill_missing(r.X, missing, r.path) for s, r in raw.items()}
    x_train = equal_length(cases["train"], unequal_length, None, raw["train"].path)
    x_test = equal_length(cases["test"], unequal_length, x_train.shape[-1], raw["test"].path)
    if x_test.shape[1] != x_train.shape[1]:
        raise DataError(f"{name}: TRAIN has {x_train.shape[1]} channels, TEST {x_test.shape[1]}")
    classes = class_names(raw["train"].y)
    if len(classes) < 2:
        raise DataError(f"{raw['train'].path}: a single class {classes}")
    y_train = encode_labels(raw["train"].y, classes, raw["train"].path)
    y_test = encode_labels(raw["test"].y, classes, raw["test"].path)
    tr, va = stratified_split(y_train, val_fraction, seed)
    arrays = {
        "x_train": x_train[tr],
        "y_train": y_train[tr],
        "x_val": x_train[va],
        "y_val": y_train[va],
        "x_test": x_test,
        "y_test": y_test,
    }
    arrays = {k: v.astype(np.float32) if k.startswith("x") else v for k, v in arrays.items()}
    return PreparedDataset(name, arrays, classes, {s: r.path for s, r in raw.items()})


def save(ds: PreparedDataset, path: str | Path) -> None:
    from safetensors.numpy import save_file

    # one metadata key: safetensors writes several keys in an arbitrary order (files would differ run to run)
    info = {"name": ds.name, "classes": ds.classes, "sources": ds.sources}
    meta = {"tsfmlab": json.dumps(info, sort_keys=True)}
    with atomic_file(path, suffix=".safetensors") as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in ds.arrays.items()}, str(tmp), metadata=meta)


def _read(path: str | Path, read):
    """``read(f)`` on the opened prepared file; anything unreadable fails naming the file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            return read(f)
    except Exception as err:
        raise DataError(f"{path}: not a prepared dataset ({err})") from err


def load_split(path: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of one split only: the other splits' tensors are not read."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return _read(path, lambda f: (f.get_tensor(f"x_{split}"), f.get_tensor(f"y_{split}")))


def load_inputs(path: str | Path, split: str) -> np.ndarray:
    """The series of one split without its labels (what feature extraction may see)."""
    return _read(path, lambda f: f.get_tensor(f"x_{split}"))


def load_classes(path: str | Path) -> list[str]:
    return _read(path, lambda f: json.loads(f.metadata()["tsfmlab"])["classes"])


def labelled(ucr_dir: Path, dataset: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs, labels)`` of a split of a prepared dataset (``<ucr_dir>/<dataset>.safetensors``)."""
    return load_split(ucr_dir / f"{dataset}.safetensors", split)


def pretraining_series(ucr_dir: Path, dataset: str, pool: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) inputs for self-supervised pretraining: the dataset's train split (+ the train and val
    splits of the prepared ``pool`` datasets) and its val split. TEST series never enter."""
    path = ucr_dir / f"{dataset}.safetensors"
    train, val = load_inputs(path, "train"), load_inputs(path, "val")
    parts = [train]
    for other in pool:
        if other == dataset:
            continue
        p = ucr_dir / f"{other}.safetensors"
        x = np.concatenate([load_inputs(p, "train"), load_inputs(p, "val")])
        if x.shape[1:] != train.shape[1:]:
            raise DataError(
                f"pretrain_timae.unlabeled_pool: {other} series are {x.shape[1:]} (channels, length), "
                f"{dataset}'s are {train.shape[1:]}"
            )
        parts.append(x)
    return np.concatenate(parts), val
