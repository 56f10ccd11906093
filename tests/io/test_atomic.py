import pytest

from tsfmlab.io.atomic import atomic_dir, atomic_file, write_json


def test_atomic_file_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_file(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_replaces_whole_directory(tmp_path):
    target = tmp_path / "corpus"
    target.mkdir()
    (target / "stale.arrow").write_text("old")
    with atomic_dir(target) as tmp:
        (tmp / "new.arrow").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.arrow"]
    assert [p.name for p in tmp_path.iterdir()] == ["corpus"]


def test_atomic_dir_keeps_old_content_on_error(tmp_path):
    target = tmp_path / "corpus"
    target.mkdir()
    (target / "old.arrow").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "half.arrow").write_text("x")
            raise RuntimeError("boom")
    assert [p.name for p in target.iterdir()] == ["old.arrow"]
    assert [p.name for p in tmp_path.iterdir()] == ["corpus"]


def test_write_json(tmp_path):
    write_json(tmp_path / "m" / "x.json", {"a": 1})
    assert (tmp_path / "m" / "x.json").read_text() == '{\n  "a": 1\n}\n'
