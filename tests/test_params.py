from dataclasses import dataclass, field
from typing import Literal

import pytest

from tsfmlab.errors import ParamError
from tsfmlab.params import load_params, open_unit, parse_section, positive


@dataclass(frozen=True)
class Inner:
    rate: float = field(metadata=open_unit)


@dataclass(frozen=True)
class Section:
    n: int = field(metadata=positive)
    name: Literal["a", "b"]
    names: list[str] | None
    inner: Inner
    named: dict[str, Inner]


GOOD = {"n": 3, "name": "a", "names": None, "inner": {"rate": 0.5}, "named": {"x": {"rate": 0.1}}}


def test_parses_valid_section():
    s = parse_section(Section, GOOD, "sec")
    assert s.n == 3 and s.inner.rate == 0.5
    assert s.named == {"x": Inner(0.1)}


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
