"""docs/params.schema.json is generated from the stages' params classes and agrees with their checks."""

import json
import subprocess
import sys

import jsonschema
import pytest

from tests.conftest import REPO
from tsfmlab.params import load_params

SCHEMA = json.loads((REPO / "docs" / "params.schema.json").read_text())


def test_committed_schema_is_current_and_params_yaml_obeys_it():
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "params_schema.py"), "--check"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("section", "path", "value", "message"),
    [
        ("distill", ("train", "max_steps"), 0, "less than or equal to the minimum"),
        ("distill", ("train", "learning_rate"), "1e-3", "is not of type 'number'"),
        ("teacher", ("data", "drop_prob"), 1.5, "greater than the maximum"),
        ("timae", ("backbones", "mamba2", "num_heads"), 4, "is not valid under any of the given schemas"),
        ("classify", ("mlp_frozen", "encoder_lr"), 1e-4, "Additional properties are not allowed"),
        ("shared", ("bootstrap", "confidence"), 1.5, "greater than the maximum"),
        ("shared", ("train", "max_steps"), 10, "Additional properties are not allowed"),
    ],
)
def test_schema_rejects_what_the_stages_reject(section, path, value, message):
    params = load_params(REPO / "params.yaml")
    node = params[section]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    errors = list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(params))
    assert any(message in e.message for e in errors), [e.message for e in errors]
