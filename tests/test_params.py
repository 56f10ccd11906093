from typing import Literal

import pytest

from tsfmlab.errors import ParamError
from tsfmlab.params import (
    TRACE_ENV,
    Named,
    OpenUnit,
    Params,
    PositiveInt,
    Shared,
    load_params,
    param,
    parse_section,
    stage_params,
)


class Inner(Params):
    rate: OpenUnit


class Section(Params):
    n: PositiveInt
    name: Literal["a", "b"]
    names: list[str] | None
    inner: Inner
    named: Named[Inner]


GOOD = {"n": 3, "name": "a", "names": None, "inner": {"rate": 0.5}, "named": {"x": {"rate": 0.1}}}


def test_parses_valid_section():
    s = parse_section(Section, GOOD, "sec")
    assert s.n == 3 and s.inner.rate == 0.5
    assert s.named == {"x": Inner(rate=0.1)}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"n": 0}, "sec.n must be > 0"),
        ({"n": "3"}, "sec.n must be int"),
        ({"n": True}, "sec.n must be int"),
        ({"name": "c"}, "sec.name must be one of"),
        ({"names": ["x", 1]}, "sec.names"),
        ({"inner": {"rate": 1.0}}, "sec.inner.rate must be in the open interval"),
        ({"typo": 1}, "unknown param(s) sec.typo"),
        ({"named": {"x": {"rate": 2.0}}}, "sec.named.x.rate must be in the open interval"),
        ({"named": {}}, "sec.named must be a non-empty mapping"),
        ({"named": [1]}, "sec.named must be a non-empty mapping"),
    ],
)
def test_bad_values_name_the_param(change, message):
    with pytest.raises(ParamError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_section(Section, {**GOOD, **change}, "sec")


def test_missing_param_is_named():
    with pytest.raises(ParamError, match="missing param sec.n"):
        parse_section(Section, {k: v for k, v in GOOD.items() if k != "n"}, "sec")


def test_yaml_12_floats(tmp_path):
    # PyYAML would read 1.0e4 as a string; DVC (YAML 1.2) reads a float, and so must we.
    (tmp_path / "params.yaml").write_text("s:\n  x: 1.0e4\n  y: 1e-9\n")
    assert load_params(tmp_path / "params.yaml")["s"] == {"x": 1.0e4, "y": 1e-9}


def test_missing_params_file(tmp_path):
    with pytest.raises(ParamError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")


class Reader(Params):
    n: PositiveInt
    levels: Shared[list[OpenUnit]]
    inner: Shared[Inner]


def test_shared_fields_come_from_the_shared_section_and_are_named_there():
    shared_values = {"levels": [0.1, 0.9], "inner": {"rate": 0.5}, "unused": 1}
    r = parse_section(Reader, {"n": 2}, "reader", shared_values)
    assert r.levels == [0.1, 0.9] and r.inner == Inner(rate=0.5)
    with pytest.raises(ParamError, match=r"unknown param\(s\) reader\.levels"):  # written once: in shared
        parse_section(Reader, {"n": 2, "levels": [0.5]}, "reader", shared_values)
    with pytest.raises(
        ParamError, match=r"param shared.levels\[0\] must be in the open interval \(0, 1\), got 1.5"
    ):
        parse_section(Reader, {"n": 2}, "reader", {**shared_values, "levels": [1.5]})
    with pytest.raises(ParamError, match="missing param shared.inner"):
        parse_section(Reader, {"n": 2}, "reader", {"levels": [0.5]})
    with pytest.raises(ParamError, match="param shared.inner.rate must be in the open interval"):
        parse_section(Reader, {"n": 2}, "reader", {**shared_values, "inner": {"rate": 2.0}})


def test_every_read_is_recorded_under_the_running_stage(tmp_path, monkeypatch):
    path = tmp_path / "params.yaml"
    path.write_text("reader: {n: 2}\nshared: {levels: [0.1], inner: {rate: 0.5}, other: 3}\nmore: {x: {y: 1}}\n")
    log = tmp_path / "read.tsv"
    monkeypatch.setenv(TRACE_ENV, str(log))
    monkeypatch.setenv("DVC_STAGE", "reader@a")
    stage_params(Reader, "reader", path)
    assert param("more.x.y", path) == 1
    with pytest.raises(ParamError, match="missing param more.x.z"):
        param("more.x.z", path)
    assert log.read_text().splitlines() == [
        "reader@a\treader", "reader@a\tshared.levels", "reader@a\tshared.inner", "reader@a\tmore.x.y"
    ]


def test_load_params_reparses_a_changed_file_and_hands_out_copies(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("s: {x: 1}\n")
    first = load_params(path)
    first["s"]["x"] = 99  # the caller's copy only
    assert load_params(path) == {"s": {"x": 1}}
    path.write_text("s: {x: 2}\n")  # same size, same second
    assert load_params(path) == {"s": {"x": 2}}
    path.write_text("s: [1\n")
    with pytest.raises(ParamError, match="not valid YAML"):
        load_params(path)
