from __future__ import annotations

import numpy as np
import pytest

from tsfmlab.data.energy import (
    CALENDAR_COVARIATES,
    MEASURED_COVARIATES,
    SEED_FUTURE,
    SEED_PAST,
    EnergyFrame,
    chronological_split,
    daily_profile,
    load_frame,
    read_steel_csv,
    save_frame,
    split_bounds,
    synthetic_energy,
)
from tsfmlab.errors import DataError, ParamError

HEADER = (
    "date,Usage_kWh,Lagging_Current_Reactive.Power_kVarh,Leading_Current_Reactive_Power_kVarh,CO2(tCO2),"
    "Lagging_Current_Power_Factor,Leading_Current_Power_Factor,NSM,WeekStatus,Day_of_week,Load_Type"
)


def steel_rows(start_minutes: int = 23 * 60, n: int = 6) -> list[str]:
    """Rows in the file's own format, from 01/01/2018 at ``start_minutes`` (midnight written as 0:00
    of the day it ends, as the real file does)."""
    rows = []
    for i in range(n):
        minutes = start_minutes + 15 * (i + 1)
        day, rest = divmod(minutes, 1440)
        if rest == 0:  # the file's 24:00: 0:00 with the date of the day that ends
            day, rest = day - 1, 0
        hour, minute = divmod(rest, 60)
        date = f"{day + 1:02d}/01/2018 {hour}:{minute:02d}"
        rows.append(f"{date},{3 + i * 0.5},2.95,0,0,73.21,100,{rest * 60},Weekday,Monday,Light_Load")
    return rows


def write_csv(tmp_path, rows: list[str], header: str = HEADER, name: str = "steel.csv"):
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]))  # the real file has no final newline either
    return path


def test_small_csv_in_the_files_format(tmp_path):
    frame = read_steel_csv(write_csv(tmp_path, steel_rows()))
    assert str(frame.timestamps[0]) == "2018-01-01T23:15:00"
    # "01/01/2018 0:00" after "01/01/2018 23:45" is the midnight that ends the 1st
    assert str(frame.timestamps[3]) == "2018-01-02T00:00:00"
    assert str(frame.timestamps[-1]) == "2018-01-02T00:30:00"
    assert frame.target.dtype == np.float32 and frame.steps_per_day == 96
    assert list(frame.past_covariates) == list(SEED_PAST)
    assert list(frame.future_covariates) == list(SEED_FUTURE)


def test_steel_csv(shared_dir):
    path = shared_dir / "data/steel_industry/Steel_industry_data.csv"
    frame = read_steel_csv(path, past=MEASURED_COVARIATES, future=CALENDAR_COVARIATES)
    assert len(frame) == 35040 == 365 * 96
    assert str(frame.timestamps[0]) == "2018-01-01T00:15:00"
    assert str(frame.timestamps[-1]) == "2019-01-01T00:00:00"  # written "31/12/2018 00:00"
    assert np.all(np.diff(frame.timestamps) == np.timedelta64(15, "m"))
    assert set(frame.future_covariates) == {"NSM", "WeekStatus", "Day_of_week"}
    assert set(frame.past_covariates) == set(MEASURED_COVARIATES)
    load = np.stack(
        [frame.past_covariates[f"Load_Type_{t}"] for t in ("Light_Load", "Medium_Load", "Maximum_Load")]
    )
    np.testing.assert_array_equal(load.sum(axis=0), 1.0)
    assert frame.future_covariates["WeekStatus"].sum() == 9984  # 104 weekend days
    assert frame.future_covariates["Day_of_week"][0] == 0  # 2018-01-01 was a Monday
    assert all(v.dtype == np.float32 for v in frame.past_covariates.values())
    default = read_steel_csv(path)  # the write-up's nine covariates
    assert len(default.past_covariates) + len(default.future_covariates) == 9


def test_missing_column_is_named(tmp_path):
    header = HEADER.replace(",CO2(tCO2)", "")
    rows = [r.split(",") for r in steel_rows()]
    path = write_csv(tmp_path, [",".join(r[:4] + r[5:]) for r in rows], header=header)
    with pytest.raises(DataError, match=r"steel\.csv: missing column 'CO2\(tCO2\)'"):
        read_steel_csv(path)
    read_steel_csv(path, past=["Lagging_Current_Power_Factor"])  # not needed: fine


def test_unparsable_date_names_line_and_value(tmp_path):
    rows = steel_rows()
    rows[2] = rows[2].replace("01/01/2018 23:45", "2018-01-01 23:45")
    with pytest.raises(DataError, match=r"line 4: unparsable date '2018-01-01 23:45'"):
        read_steel_csv(write_csv(tmp_path, rows))
    rows = steel_rows()
    rows[1] = rows[1].replace("01/01/2018", "13/13/2018")  # month first would be valid for day <= 12
    with pytest.raises(DataError, match=r"line 3: unparsable date '13/13/2018 23:30'"):
        read_steel_csv(write_csv(tmp_path, rows))


def test_duplicated_timestamp_is_an_error(tmp_path):
    rows = steel_rows()
    rows.insert(2, rows[1])
    with pytest.raises(
        DataError, match=r"line 4: duplicated timestamp 2018-01-01T23:30:00 \(also on line 3\)"
    ):
        read_steel_csv(write_csv(tmp_path, rows))


def test_gap_and_disorder_are_errors(tmp_path):
    rows = steel_rows()
    del rows[4]
    with pytest.raises(DataError, match=r"line 6: gap: 2018-01-02T00:30:00 follows 2018-01-02T00:00:00"):
        read_steel_csv(write_csv(tmp_path, rows))
    rows = steel_rows()
    rows[1], rows[2] = rows[2], rows[1]
    with pytest.raises(DataError, match=r"line 3: gap"):
        read_steel_csv(write_csv(tmp_path, rows))


def test_bad_values_name_column_and_line(tmp_path):
    rows = steel_rows()
    rows[3] = rows[3].replace(",73.21,", ",n/a,")
    with pytest.raises(
        DataError, match=r"line 5: column 'Lagging_Current_Power_Factor' has non-numeric value 'n/a'"
    ):
        read_steel_csv(write_csv(tmp_path, rows))
    rows = steel_rows()
    rows[0] = rows[0].replace(",3.0,", ",,")
    with pytest.raises(DataError, match=r"line 2: column 'Usage_kWh' has non-numeric value ''"):
        read_steel_csv(write_csv(tmp_path, rows))
    rows = steel_rows()
    rows[5] = rows[5].replace("Light_Load", "Heavy_Load")
    with pytest.raises(DataError, match=r"line 7: column 'Load_Type' has unknown value 'Heavy_Load'"):
        read_steel_csv(write_csv(tmp_path, rows))


def test_covariate_names_are_checked(tmp_path):
    path = write_csv(tmp_path, steel_rows())
    with pytest.raises(
        ParamError, match=r"energy.past_covariates: unknown covariate\(s\) Temp; available: CO2"
    ):
        read_steel_csv(path, past=["Temp"])
    with pytest.raises(
        ParamError, match=r"future_covariates: .*CO2\(tCO2\) measured: only known up to the origin"
    ):
        read_steel_csv(path, future=["CO2(tCO2)"])
    with pytest.raises(ParamError, match="both list NSM"):
        read_steel_csv(path, past=["NSM"], future=["NSM"])
    with pytest.raises(ParamError, match="target CO2\\(tCO2\\) cannot also be a covariate"):
        read_steel_csv(path, target="CO2(tCO2)")
    frame = read_steel_csv(path, past=["NSM"], future=[])  # a calendar covariate may be used as past-only
    assert list(frame.past_covariates) == ["NSM"] and not frame.future_covariates


def test_synthetic_energy_is_deterministic():
    a, b, c = synthetic_energy(3, seed=7), synthetic_energy(3, seed=7), synthetic_energy(3, seed=8)
    assert a.target.tobytes() == b.target.tobytes()
    assert a.past_covariates["production"].tobytes() == b.past_covariates["production"].tobytes()
    assert a.target.tobytes() != c.target.tobytes()
    np.testing.assert_array_equal(a.future_covariates["NSM"], c.future_covariates["NSM"])  # calendar


def test_synthetic_energy_follows_its_equation():
    frame = synthetic_energy(14, seed=0, noise_std=2.0)
    cal, p = frame.future_covariates, frame.past_covariates["production"]
    level = 60 + 40 * (1 - 0.7 * cal["WeekStatus"]) * daily_profile(cal["NSM"] / 86400)
    residual = frame.target[1:] - level[1:] - p[:-1]  # production leads the target by one step
    assert abs(residual.std() - 2.0) < 0.15 and abs(residual.mean()) < 0.2
    assert list(cal["WeekStatus"][:: 96 * 1][:7]) == [0, 0, 0, 0, 0, 1, 1]
    assert len(frame) == 14 * 96 and str(frame.timestamps[96]) == "2018-01-02T00:00:00"


def test_chronological_split():
    frame = synthetic_energy(10, seed=0)
    train, val, test = chronological_split(frame, val_fraction=0.2, test_fraction=0.1)
    assert (len(train), len(val), len(test)) == (672, 192, 96)
    assert train.timestamps[-1] < val.timestamps[0] and val.timestamps[-1] < test.timestamps[0]
    np.testing.assert_array_equal(np.concatenate([train.target, val.target, test.target]), frame.target)
    assert split_bounds(960, 0.2, 0.1) == (672, 864)
    for bad in [(0.0, 0.1), (0.2, 1.0), (0.6, 0.4)]:
        with pytest.raises(ParamError, match="fraction"):
            chronological_split(frame, *bad)
    with pytest.raises(DataError, match="test 96; each needs at least 100"):
        chronological_split(frame, 0.2, 0.1, min_length=100)


def test_save_load_roundtrip_is_byte_reproducible(tmp_path):
    frame = synthetic_energy(2, seed=3)
    save_frame(frame, tmp_path / "a.safetensors")
    save_frame(frame, tmp_path / "b.safetensors")
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors", "b.safetensors"]  # no temp left
    back = load_frame(tmp_path / "a.safetensors")
    np.testing.assert_array_equal(back.timestamps, frame.timestamps)
    np.testing.assert_array_equal(back.target, frame.target)
    assert list(back.past_covariates) == ["production"]
    assert list(back.future_covariates) == list(frame.future_covariates)
    for k, v in frame.future_covariates.items():
        np.testing.assert_array_equal(back.future_covariates[k], v)
    assert (back.steps_per_day, back.target_name, back.source) == (96, "load", frame.source)


def test_frame_errors(tmp_path):
    frame = synthetic_energy(1, seed=0)
    with pytest.raises(DataError, match="NaN-only"):
        EnergyFrame(frame.timestamps, np.full(96, np.nan, np.float32), {}, {}, 96)
    with pytest.raises(DataError, match="both past-only and future-known"):
        EnergyFrame(frame.timestamps, frame.target, {"x": frame.target}, {"x": frame.target}, 96)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(DataError, match="bad.safetensors: not an energy frame"):
        load_frame(bad)
    with pytest.raises(DataError, match="nowhere.safetensors: energy frame not found"):
        load_frame(tmp_path / "nowhere.safetensors")
