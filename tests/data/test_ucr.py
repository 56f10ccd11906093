"""UCR/UEA loading: local archive layouts, bundled names, cleaning policies, labels and the split."""

import numpy as np
import pytest

from tsfmlab.data import ucr
from tsfmlab.errors import DataError, ParamError


def write_tsv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("\t".join(str(v) for v in row) + "\n" for row in rows))


@pytest.fixture
def archive(tmp_path):
    """A two-dataset archive: Toy in the UCR 2018 .tsv layout (unequal lengths NaN-padded at the end),
    Multi in the .ts layout (two channels)."""
    rng = np.random.default_rng(0)
    train = [
        [lab, *np.round(rng.normal(size=12), 3)] for lab in ["2", "10", "2", "10", "2", "10", "-1", "-1"]
    ]
    train[0][-3:] = ["NaN", "NaN", "NaN"]  # a shorter series
    write_tsv(tmp_path / "Toy/Toy_TRAIN.tsv", train)
    write_tsv(
        tmp_path / "Toy/Toy_TEST.tsv", [[lab, *np.round(rng.normal(size=12), 3)] for lab in ["10", "-1", "2"]]
    )
    header = "@problemName Multi\n@timeStamps false\n@missing false\n@univariate false\n@dimensions 2\n" \
             "@equalLength true\n@seriesLength 4\n@classLabel true a b\n@data\n"  # fmt: skip
    lines = [f"1,2,3,{i}:4,5,6,{i}:{'ab'[i % 2]}\n" for i in range(6)]
    (tmp_path / "Multi").mkdir()
    (tmp_path / "Multi/Multi_TRAIN.ts").write_text(header + "".join(lines))
    (tmp_path / "Multi/Multi_TEST.ts").write_text(header + "".join(lines[:2]))
    return tmp_path


def prep(name, local_dir, **kw):
    args = dict(
        download=False, cache_dir="unused", unequal_length="pad", missing="error", val_fraction=0.25, seed=0
    )
    return ucr.prepare(name, str(local_dir) if local_dir else None, **{**args, **kw})


def test_local_tsv_archive_by_name(archive):
    ds = prep("Toy", archive)
    assert ds.classes == ["-1", "2", "10"]  # numeric labels sorted as numbers
    assert ds.info == {"n_train": 5, "n_val": 3, "n_test": 3, "n_classes": 3, "n_channels": 1, "length": 12}
    assert ds.arrays["x_train"].dtype == np.float32 and np.isfinite(ds.arrays["x_train"]).all()
    np.testing.assert_array_equal(ds.arrays["y_test"], [2, 0, 1])  # "10", "-1", "2" with TRAIN's encoding
    assert ds.sources["train"].endswith("Toy/Toy_TRAIN.tsv")


def test_local_ts_archive_multivariate(archive):
    ds = prep("Multi", archive, val_fraction=0.34)
    assert ds.classes == ["a", "b"] and ds.arrays["x_train"].shape[1:] == (2, 4)


@pytest.mark.parametrize("policy,length", [("pad", 12), ("resample", 12), ("truncate", 9)])
def test_unequal_length_policies(archive, policy, length):
    ds = prep("Toy", archive, unequal_length=policy)
    assert ds.info["length"] == length


def test_unequal_length_refused_by_default_policy(archive):
    with pytest.raises(DataError, match=r"Toy_TRAIN.tsv: unequal lengths \(9-12.*unequal_length"):
        prep("Toy", archive, unequal_length="error")


def test_missing_values_refused_or_interpolated(archive):
    rows = [
        ["1", 1.0, "NaN", 3.0, 4.0],
        ["2", 1.0, 2.0, 3.0, 4.0],
        ["1", 0.0, 1.0, 0.0, 1.0],
        ["2", 2.0, 2.0, 2.0, 2.0],
    ]
    write_tsv(archive / "Gap/Gap_TRAIN.tsv", rows)
    write_tsv(archive / "Gap/Gap_TEST.tsv", rows)
    with pytest.raises(DataError, match="Gap_TRAIN.tsv: case 0 has missing values.*interpolate"):
        prep("Gap", archive)
    ds = prep("Gap", archive, missing="interpolate", val_fraction=0.5)
    both = np.concatenate([ds.arrays["x_train"], ds.arrays["x_val"]])
    assert [1.0, 2.0, 3.0, 4.0] in both[:, 0].tolist() and np.isfinite(both).all()


def test_nan_only_series_fails_naming_the_case(archive):
    write_tsv(archive / "Empty/Empty_TRAIN.tsv", [["1", 1.0, 2.0], ["2", "NaN", "NaN"], ["1", 3.0, 4.0]])
    write_tsv(archive / "Empty/Empty_TEST.tsv", [["1", 1.0, 2.0]])
    with pytest.raises(DataError, match="Empty_TRAIN.tsv: case 1 has a channel with no finite value"):
        prep("Empty", archive, missing="interpolate")


def test_malformed_files_fail_naming_them(archive):
    write_tsv(archive / "Bad/Bad_TRAIN.tsv", [["1", "0.5", "oops"]])
    write_tsv(archive / "Bad/Bad_TEST.tsv", [["1", "0.5", "0.7"]])
    with pytest.raises(DataError, match=r"Bad_TRAIN.tsv: line 1"):
        prep("Bad", archive)
    (archive / "Worse").mkdir()
    (archive / "Worse/Worse_TRAIN.ts").write_text(
        "@problemName Worse\n@classLabel true 1 2\n@data\n1,2,zz:1\n"
    )
    (archive / "Worse/Worse_TEST.ts").write_text("")
    with pytest.raises(DataError, match=r"Worse_TRAIN.ts: malformed .ts file"):
        prep("Worse", archive)


def test_test_label_unseen_in_train_fails(archive):
    write_tsv(archive / "Toy/Toy_TEST.tsv", [["7", 1.0] + [0.0] * 11])
    with pytest.raises(DataError, match=r"Toy_TEST.tsv: label\(s\) \['7'\] do not occur in TRAIN"):
        prep("Toy", archive)


def test_bundled_dataset_offline_and_unknown_name(tmp_path):
    assert {"GunPoint", "ItalyPowerDemand", "ArrowHead", "BasicMotions"} <= set(ucr.bundled_datasets())
    ds = prep("ItalyPowerDemand", None)
    assert (
        ds.info["length"] == 24 and ds.info["n_train"] + ds.info["n_val"] == 67 and ds.info["n_test"] == 1029
    )
    with pytest.raises(ParamError, match=r"unknown dataset 'ECG5000'.*GunPoint.*prepare_ucr.local_dir"):
        prep("ECG5000", tmp_path)


def test_stratified_split_is_seeded_and_keeps_every_class():
    y = np.array([0] * 10 + [1] * 5 + [2] * 2)
    tr, va = ucr.stratified_split(y, 0.2, seed=3)
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(17)) and not set(tr) & set(va)
    assert [int((y[va] == c).sum()) for c in range(3)] == [2, 1, 1]
    assert set(y[tr]) == {0, 1, 2}
    np.testing.assert_array_equal(ucr.stratified_split(y, 0.2, seed=3)[1], va)
    assert not np.array_equal(ucr.stratified_split(y, 0.2, seed=4)[1], va)


def test_saved_file_loads_one_split_at_a_time(archive, tmp_path):
    ds = prep("Toy", archive)
    path = tmp_path / "Toy.safetensors"
    ucr.save(ds, path)
    x, y = ucr.load_split(path, "val")
    np.testing.assert_array_equal(x, ds.arrays["x_val"])
    np.testing.assert_array_equal(y, ds.arrays["y_val"])
    assert ucr.load_classes(path) == ds.classes
    path.write_bytes(b"garbage")
    with pytest.raises(DataError, match="Toy.safetensors: not a prepared dataset"):
        ucr.load_split(path, "train")
