"""Energy-consumption series with covariates, for forecasting with Chronos-2 and lag-feature baselines.

An :class:`EnergyFrame` is one regularly sampled series (``target``) with two kinds of covariates:

* **past-only** covariates are *measured* alongside the target (reactive powers, power factors, CO2,
  the load type): at a forecast origin only their values before the origin are known;
* **future-known** covariates are *calendar-derived* (seconds since midnight, weekday/weekend, day of
  the week): their values after the origin are known too and may be given to a model.

Keeping the two apart in the data structure is what lets the evaluation declare them to fev as
``past_dynamic_columns`` and ``known_dynamic_columns`` (prepare_energy writes the frame in fev's schema):
fev's windows then hold no measured value at or after a forecast's cutoff.

Sources:

* :func:`read_steel_csv` reads the UCI *Steel Industry Energy Consumption* CSV (15-minute rows for
  2018) strictly: the date format is explicit (day first), duplicated timestamps and gaps in the grid
  are errors naming the first offending line, nothing is sorted or filled silently. The one
  correction applied is documented in :func:`steel_timestamps` (the file writes 24:00 as 0:00 of the
  same day).
* :func:`synthetic_energy` is an offline stand-in with the same interface whose target is driven by
  known covariates (its generating equation is in its docstring).

A prepared frame is saved as ONE safetensors file (:func:`save_frame`): the arrays plus a single JSON
metadata key with sorted keys, so the same frame always gives the same bytes.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Self

import numpy as np
from pydantic import model_validator

from ..errors import DataError, ParamError
from ..io.atomic import atomic_file, write_json
from ..params import (
    BelowOne,
    Distinct,
    NonNegativeFloat,
    OpenUnit,
    Params,
    PositiveFloat,
    PositiveInt,
    same_length,
)
from .covariates import covariate_columns

#: calendar covariates: functions of the timestamp, so known at any future time
CalendarCovariate = Literal["NSM", "WeekStatus", "Day_of_week"]


class SteelParams(Params):
    csv: str
    target: str
    past_covariates: list[str]
    future_covariates: list[str]


class SyntheticEnergyParams(Params):
    n_days: PositiveInt
    seed: int
    ar: BelowOne
    production_std: PositiveFloat
    noise_std: NonNegativeFloat
    future_covariates: list[CalendarCovariate]


class EnergyParams(Params):
    """The ``energy`` section: the data, its split and the evaluation protocol every stage shares."""

    source: Literal["synthetic", "steel"]
    steel: SteelParams
    synthetic: SyntheticEnergyParams
    val_fraction: OpenUnit
    test_fraction: OpenUnit
    horizons: Distinct[PositiveInt]
    strides: list[PositiveInt]  # one per horizon
    context_length: PositiveInt
    season: PositiveInt

    @model_validator(mode="after")
    def _one_stride_per_horizon(self) -> Self:
        same_length(self, "horizons", "strides")
        return self

    @property
    def windows(self) -> list[tuple[int, int]]:
        """``(horizon, stride)`` pairs."""
        return list(zip(self.horizons, self.strides, strict=True))


TARGET = "Usage_kWh"
DATE_COLUMN = "date"
DATE_FORMAT = "%d/%m/%Y %H:%M"  # day first: 01/02/2018 is the 1st of February
STEP_MINUTES = 15
STEPS_PER_DAY = 24 * 60 // STEP_MINUTES  # 96

WEEK_STATUS = {"Weekday": 0.0, "Weekend": 1.0}
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
LOAD_TYPES = ("Light_Load", "Medium_Load", "Maximum_Load")

#: measured covariates: only their values up to the forecast origin are known
MEASURED_COVARIATES = (
    "CO2(tCO2)",
    "Lagging_Current_Reactive.Power_kVarh",
    "Leading_Current_Reactive_Power_kVarh",
    "Lagging_Current_Power_Factor",
    "Leading_Current_Power_Factor",
    *(f"Load_Type_{t}" for t in LOAD_TYPES),
)
CALENDAR_COVARIATES = typing.get_args(CalendarCovariate)
STEEL_COVARIATES = MEASURED_COVARIATES + CALENDAR_COVARIATES

#: the nine covariates of the reference write-up (US-014), split by when they are known
SEED_PAST = (
    "Load_Type_Maximum_Load",
    "Load_Type_Medium_Load",
    "CO2(tCO2)",
    "Lagging_Current_Reactive.Power_kVarh",
    "Leading_Current_Reactive_Power_kVarh",
    "Lagging_Current_Power_Factor",
    "Leading_Current_Power_Factor",
)
SEED_FUTURE = ("WeekStatus", "NSM")

FORMAT = "tsfmlab.energy_frame/1"
METADATA_KEY = "tsfmlab"


@dataclasses.dataclass(frozen=True, eq=False)
class EnergyFrame:
    """A regular series with covariates; every array has the length of ``timestamps``.

    ``timestamps`` is ``datetime64[s]``, ``target`` and the covariates are float32 (NaN = missing).
    A name is either in ``past_covariates`` (measured: known up to the origin) or in
    ``future_covariates`` (calendar: known ahead), never in both."""

    timestamps: np.ndarray
    target: np.ndarray
    past_covariates: dict[str, np.ndarray]
    future_covariates: dict[str, np.ndarray]
    steps_per_day: int
    target_name: str = TARGET
    source: str = ""

    def __post_init__(self) -> None:
        n = len(self.timestamps)
        if self.target.shape != (n,):
            raise DataError(f"{self._where}: target has shape {self.target.shape}, expected ({n},)")
        both = sorted(set(self.past_covariates) & set(self.future_covariates))
        if both:
            raise DataError(f"{self._where}: covariate(s) {', '.join(both)} both past-only and future-known")
        for name, values in {**self.past_covariates, **self.future_covariates}.items():
            if values.shape != (n,):
                raise DataError(f"{self._where}: covariate {name} has shape {values.shape}, expected ({n},)")
        if n and not np.isfinite(self.target).any():
            raise DataError(f"{self._where}: target {self.target_name} has no finite value (NaN-only)")
        if self.steps_per_day <= 0:
            raise DataError(f"{self._where}: steps_per_day must be > 0, got {self.steps_per_day}")

    @property
    def _where(self) -> str:
        return self.source or "energy frame"

    def __len__(self) -> int:
        return len(self.timestamps)

    @property
    def step(self) -> np.timedelta64:
        return np.timedelta64(86400 // self.steps_per_day, "s")

    def slice(self, start: int, stop: int) -> EnergyFrame:
        """Rows ``start:stop`` (views of this frame's arrays)."""
        return dataclasses.replace(
            self,
            timestamps=self.timestamps[start:stop],
            target=self.target[start:stop],
            past_covariates={k: v[start:stop] for k, v in self.past_covariates.items()},
            future_covariates={k: v[start:stop] for k, v in self.future_covariates.items()},
        )


def covariate_names(frame: EnergyFrame, covariates: str) -> tuple[list[str], list[str]]:
    """``(past_only, future_known)`` covariate names of ``frame`` that covariate mode ``covariates`` reads."""
    return covariate_columns(frame.past_covariates, frame.future_covariates, covariates)


# --------------------------------------------------------------------------------------------------
# the steel CSV


def select_covariates(
    past: Sequence[str], future: Sequence[str], section: str = "energy"
) -> tuple[list[str], list[str]]:
    """Check covariate names: any steel covariate may be past-only, only calendar ones future-known."""
    past, future = list(past), list(future)
    for key, names, allowed in (
        ("past_covariates", past, STEEL_COVARIATES),
        ("future_covariates", future, CALENDAR_COVARIATES),
    ):
        unknown = [n for n in names if n not in allowed]
        if unknown:
            measured = [n for n in unknown if n in MEASURED_COVARIATES]
            why = f" ({', '.join(measured)} measured: only known up to the origin)" if measured else ""
            raise ParamError(
                f"param {section}.{key}: unknown covariate(s) {', '.join(unknown)}{why}; "
                f"available: {', '.join(allowed)}"
            )
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ParamError(f"param {section}.{key}: covariate(s) {', '.join(duplicated)} listed twice")
    both = [n for n in past if n in future]
    if both:
        raise ParamError(
            f"params {section}.past_covariates and {section}.future_covariates both list {', '.join(both)}"
        )
    return past, future


def read_steel_csv(
    path: str | Path,
    target: str = TARGET,
    past: Sequence[str] = SEED_PAST,
    future: Sequence[str] = SEED_FUTURE,
    section: str = "energy",
) -> EnergyFrame:
    """Load the steel-industry CSV as an :class:`EnergyFrame` with the chosen covariates.

    Errors name the file and the offending column or line (line 1 is the header): missing columns,
    unparsable dates, non-numeric or empty numeric cells, unknown categories, duplicated timestamps
    and gaps in the 15-minute grid."""
    import pandas as pd

    past, future = select_covariates(past, future, section)
    if target in past or target in future:
        raise ParamError(f"param {section}: the target {target} cannot also be a covariate")
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: steel CSV not found")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable CSV ({err})") from err
    needed = [DATE_COLUMN, target, *(_source_column(n) for n in (*past, *future))]
    for column in dict.fromkeys(needed):
        if column not in df.columns:
            raise DataError(f"{path}: missing column {column!r} (columns: {', '.join(df.columns)})")
    if len(df) == 0:
        raise DataError(f"{path}: no data rows")
    timestamps = steel_timestamps(df[DATE_COLUMN], path)
    check_grid(timestamps, np.timedelta64(STEP_MINUTES, "m"), path)
    columns = {name: _covariate(df, name, path) for name in (*past, *future)}
    return EnergyFrame(
        timestamps=timestamps,
        target=_numeric(df, target, path),
        past_covariates={n: columns[n] for n in past},
        future_covariates={n: columns[n] for n in future},
        steps_per_day=STEPS_PER_DAY,
        target_name=target,
        source=str(path),
    )


def _source_column(name: str) -> str:
    return "Load_Type" if name.startswith("Load_Type_") else name


def _line(row: int) -> str:
    return f"line {row + 2}"  # line 1 is the header


def steel_timestamps(dates, path: str | Path) -> np.ndarray:
    """Parse the ``date`` column (``DATE_FORMAT``) to ``datetime64[s]``.

    The file labels each row by the END of its 15-minute interval and writes the midnight that ends
    day D as ``D 0:00`` (not ``D+1 0:00``), placed after ``D 23:45``; the last row, ``31/12/2018
    00:00``, is 2019-01-01 00:00. A 0:00 row whose date equals the previous row's 23:45 is therefore
    moved to the next day. Nothing else is corrected: any other out-of-grid label fails in
    :func:`check_grid`."""
    import pandas as pd

    values = dates.to_numpy(dtype=object)
    parsed = pd.to_datetime(dates, format=DATE_FORMAT, errors="coerce")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        row = int(bad[0])
        raise DataError(
            f"{path}: {_line(row)}: unparsable date {values[row]!r} in column {DATE_COLUMN!r} "
            f"(expected day first, {DATE_FORMAT})"
        )
    ts = parsed.to_numpy().astype("datetime64[s]")
    day = np.timedelta64(1, "D")
    midnight = (ts - ts.astype("datetime64[D]")) == np.timedelta64(0, "s")
    previous = np.concatenate([[np.datetime64("NaT", "s")], ts[:-1]])
    ends_day = midnight & (previous == ts + day - np.timedelta64(STEP_MINUTES, "m"))
    return np.where(ends_day, ts + day, ts)


def check_grid(timestamps: np.ndarray, step: np.timedelta64, where: str | Path) -> None:
    """Fail at the first duplicated timestamp, gap or backward step of a regular grid."""
    diffs = np.diff(timestamps)
    bad = np.flatnonzero(diffs != step)
    if not len(bad):
        return
    i = int(bad[0])
    prev, cur = timestamps[i], timestamps[i + 1]
    if diffs[i] == np.timedelta64(0, "s"):
        what = f"duplicated timestamp {cur} (also on {_line(i)})"
    elif diffs[i] > step:
        what = f"gap: {cur} follows {prev} ({_line(i)}), expected {prev + step}"
    else:
        what = f"timestamp {cur} is not {step} after {prev} ({_line(i)}): unsorted or off the grid"
    raise DataError(f"{where}: {_line(i + 1)}: {what}")


def _numeric(df, column: str, path: str | Path) -> np.ndarray:
    import pandas as pd

    raw = df[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        row = int(bad[0])
        raise DataError(f"{path}: {_line(row)}: column {column!r} has non-numeric value {raw.iloc[row]!r}")
    return values.astype(np.float32)


def _categorical(df, column: str, codes: dict[str, float], path: str | Path) -> np.ndarray:
    raw = df[column].to_numpy(dtype=object)
    out = np.array([codes.get(v, np.nan) for v in raw], dtype=np.float32)
    bad = np.flatnonzero(np.isnan(out))
    if len(bad):
        row = int(bad[0])
        raise DataError(
            f"{path}: {_line(row)}: column {column!r} has unknown value {raw[row]!r} "
            f"(expected one of {', '.join(codes)})"
        )
    return out


def _covariate(df, name: str, path: str | Path) -> np.ndarray:
    """One covariate as float32: categories encoded (WeekStatus, Day_of_week, Load_Type one-hot)."""
    if name == "WeekStatus":
        return _categorical(df, name, WEEK_STATUS, path)
    if name == "Day_of_week":
        return _categorical(df, name, {d: float(i) for i, d in enumerate(DAYS)}, path)
    if name.startswith("Load_Type_"):
        load = _categorical(df, "Load_Type", {t: float(i) for i, t in enumerate(LOAD_TYPES)}, path)
        return (load == LOAD_TYPES.index(name.removeprefix("Load_Type_"))).astype(np.float32)
    return _numeric(df, name, path)


# --------------------------------------------------------------------------------------------------
# synthetic stand-in


def calendar(timestamps: np.ndarray) -> dict[str, np.ndarray]:
    """NSM (seconds since midnight), Day_of_week (Monday = 0) and WeekStatus (weekend = 1)."""
    ts = timestamps.astype("datetime64[s]")
    days = ts.astype("datetime64[D]")
    nsm = (ts - days).astype(np.int64)
    dow = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    return {
        "NSM": nsm.astype(np.float32),
        "WeekStatus": (dow >= 5).astype(np.float32),
        "Day_of_week": dow.astype(np.float32),
    }


def daily_profile(hour_fraction: np.ndarray) -> np.ndarray:
    """s(h) = 0.5 - 0.5 cos(2 pi h) + 0.2 sin(4 pi h): low at night, a working-day peak."""
    h = np.asarray(hour_fraction, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2 * np.pi * h) + 0.2 * np.sin(4 * np.pi * h)


SYNTHETIC_START = np.datetime64("2018-01-01T00:00:00", "s")  # a Monday
SYNTHETIC_PAST = ("production",)


def synthetic_energy(
    n_days: int,
    steps_per_day: int = STEPS_PER_DAY,
    seed: int = 0,
    ar: float = 0.9,
    production_std: float = 10.0,
    noise_std: float = 2.0,
) -> EnergyFrame:
    """An offline stand-in for the steel data, driven by known covariates (deterministic per seed).

    With ``h_t`` the time of day as a fraction of the day (``NSM / 86400``), ``w_t`` = WeekStatus
    (1 on Saturday and Sunday) and ``s`` = :func:`daily_profile`::

        p_t = ar * p_{t-1} + sqrt(1 - ar^2) * production_std * e_t        (production, AR(1))
        y_t = 60 + 40 * (1 - 0.7 * w_t) * s(h_t) + p_{t-1} + noise_std * n_t

    with ``e_t, n_t`` i.i.d. standard normal and ``p`` started from its stationary law. The measured
    ``production`` leads the target by one step, so at the origin ``o`` it gives ``y_o`` up to the
    noise: past covariates genuinely help at horizon 1 (their value decays as ``ar^(h-1)``). The daily
    profile and the weekday/weekend level are exact functions of the future-known calendar
    covariates (NSM, WeekStatus, Day_of_week): they are what remains predictable at long horizons."""
    if n_days <= 0 or steps_per_day <= 0 or 86400 % steps_per_day:
        raise ParamError(
            f"synthetic_energy: n_days must be > 0 and steps_per_day a divisor of 86400, "
            f"got {n_days} and {steps_per_day}"
        )
    if not 0 <= ar < 1:
        raise ParamError(f"synthetic_energy: ar must be in [0, 1), got {ar}")
    n = n_days * steps_per_day
    rng = np.random.default_rng(seed)
    shocks = rng.standard_normal(n + 1)
    noise = rng.standard_normal(n)
    p = np.empty(n + 1)  # p[0] is p_{-1}, the production before the first step
    p[0] = production_std * shocks[0]
    innovation = np.sqrt(1 - ar**2) * production_std
    for t in range(1, n + 1):
        p[t] = ar * p[t - 1] + innovation * shocks[t]
    timestamps = SYNTHETIC_START + np.arange(n) * np.timedelta64(86400 // steps_per_day, "s")
    cal = calendar(timestamps)
    level = 40.0 * (1 - 0.7 * cal["WeekStatus"]) * daily_profile(cal["NSM"] / 86400.0)
    y = 60.0 + level + p[:-1] + noise_std * noise
    return EnergyFrame(
        timestamps=timestamps,
        target=y.astype(np.float32),
        past_covariates={"production": p[1:].astype(np.float32)},
        future_covariates=cal,
        steps_per_day=steps_per_day,
        target_name="load",
        source=f"synthetic_energy(seed={seed})",
    )


# --------------------------------------------------------------------------------------------------
# chronological split


def split_bounds(n: int, val_fraction: float, test_fraction: float, min_length: int = 1) -> tuple[int, int]:
    """``(val_start, test_start)``: train ``[0, val_start)``, val up to ``test_start``, test to ``n``."""
    for name, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 < fraction < 1:
            raise ParamError(
                f"chronological split: {name} must be in the open interval (0, 1), got {fraction}"
            )
    if val_fraction + test_fraction >= 1:
        raise ParamError(
            f"chronological split: val_fraction + test_fraction must be < 1, got {val_fraction + test_fraction}"
        )
    n_test = int(round(n * test_fraction))
    n_val = int(round(n * val_fraction))
    n_train = n - n_val - n_test
    if min(n_train, n_val, n_test) < min_length:
        raise DataError(
            f"chronological split of {n} points: train {n_train}, val {n_val}, test {n_test}; "
            f"each needs at least {min_length}"
        )
    return n_train, n_train + n_val


def chronological_split(
    frame: EnergyFrame, val_fraction: float, test_fraction: float, min_length: int = 1
) -> tuple[EnergyFrame, EnergyFrame, EnergyFrame]:
    """Train, validation and test frames in time order, disjoint and covering the whole frame."""
    val_start, test_start = split_bounds(len(frame), val_fraction, test_fraction, min_length)
    return (
        frame.slice(0, val_start),
        frame.slice(val_start, test_start),
        frame.slice(test_start, len(frame)),
    )


# --------------------------------------------------------------------------------------------------
# one safetensors file


def save_frame(frame: EnergyFrame, path: str | Path) -> Path:
    """Write the frame atomically as one safetensors file; the same frame gives the same bytes."""
    from safetensors.numpy import save

    path = Path(path)
    arrays = {
        "timestamps": frame.timestamps.astype("datetime64[s]").astype(np.int64),
        "target": np.ascontiguousarray(frame.target, dtype=np.float32),
        **{f"past/{k}": np.ascontiguousarray(v, dtype=np.float32) for k, v in frame.past_covariates.items()},
        **{
            f"future/{k}": np.ascontiguousarray(v, dtype=np.float32)
            for k, v in frame.future_covariates.items()
        },
    }
    meta = {
        "format": FORMAT,
        "target_name": frame.target_name,
        "steps_per_day": frame.steps_per_day,
        "past_covariates": list(frame.past_covariates),
        "future_covariates": list(frame.future_covariates),
        "source": frame.source,
    }
    data = save(arrays, metadata={METADATA_KEY: json.dumps(meta, sort_keys=True)})
    with atomic_file(path, suffix=".safetensors") as tmp:
        tmp.write_bytes(data)
    return path


def load_frame(path: str | Path) -> EnergyFrame:
    """Read a frame written by :func:`save_frame`, failing with the file's name if it is not one."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: energy frame not found (run the stage that prepares it)")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = json.loads((f.metadata() or {})[METADATA_KEY])
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except (KeyError, ValueError, OSError, SafetensorError) as err:
        raise DataError(
            f"{path}: not an energy frame safetensors file ({type(err).__name__}: {err})"
        ) from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f"{path}: metadata is not {FORMAT!r}")
    try:
        return EnergyFrame(
            timestamps=arrays["timestamps"].astype("datetime64[s]"),
            target=arrays["target"],
            past_covariates={k: arrays[f"past/{k}"] for k in meta["past_covariates"]},
            future_covariates={k: arrays[f"future/{k}"] for k in meta["future_covariates"]},
            steps_per_day=int(meta["steps_per_day"]),
            target_name=meta["target_name"],
            source=meta["source"],
        )
    except KeyError as err:
        raise DataError(f"{path}: energy frame lacks {err}") from err
    except DataError as err:
        raise DataError(f"{path}: {err}") from err


# --------------------------------------------------------------------------------------------------
# prepare_energy's directory: the frame and its split


#: the file of prepare_energy's fev dataset directory (one item: the frame in fev's schema)
FEV_FILE = "data.parquet"


def save_prepared(directory: str | Path, frame: EnergyFrame, val_start: int, test_start: int) -> None:
    """The frame (:func:`save_frame`) and its train | validation | test bounds under ``directory``."""
    save_frame(frame, Path(directory) / "frame.safetensors")
    write_json(Path(directory) / "split.json", {"val_start": val_start, "test_start": test_start, "n": len(frame)})


def load_prepared(directory: str | Path) -> tuple[EnergyFrame, int, int]:
    """``(frame, val_start, test_start)`` as :func:`save_prepared` wrote them."""
    frame = load_frame(Path(directory) / "frame.safetensors")
    path = Path(directory) / "split.json"
    try:
        split = json.loads(path.read_text())
        return frame, int(split["val_start"]), int(split["test_start"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"{path}: not prepare_energy's split ({err})") from err
