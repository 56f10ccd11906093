import subprocess
import sys

import pytest

from tests.conftest import REPO
from tsfmlab.errors import ParamError
from tsfmlab.params import load_params
from tsfmlab.profile import leaves, set_arguments


def test_gpu_profile_overrides_only_existing_params():
    args = set_arguments(REPO / "profiles" / "gpu.yaml", REPO / "params.yaml")
    pairs = dict(a.split("=", 1) for a in args[1::2])
    assert args[0::2] == ["-S"] * len(pairs)
    assert pairs["teacher.model.size"] == '"small"' and pairs["distill.n_tokens"] == "4096"
    assert pairs["evaluate_forecast.datasets.solar.windows"] == "2"
    params = leaves(load_params(REPO / "params.yaml"))
    assert set(pairs) <= set(params) | {"distill.student_overrides"}


def test_unknown_key_is_refused(tmp_path):
    (tmp_path / "p.yaml").write_text("teacher:\n  train:\n    max_stepz: 3\n")
    with pytest.raises(ParamError, match="teacher.train.max_stepz is not a param"):
        set_arguments(tmp_path / "p.yaml", REPO / "params.yaml")


def test_command_line_prints_arguments_without_spaces_inside():
    out = subprocess.run(
        [sys.executable, "-m", "tsfmlab.profile", "profiles/gpu.yaml"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert out[0] == "-S" and len(out) % 2 == 0
