"""docs/params.schema.json is generated from the stages' params classes and agrees with their checks."""

import importlib.util
import json

import jsonschema
import pytest

from tests.conftest import REPO
from tsfmlab.params import load_params

SCHEMA = json.loads((REPO / "docs" / "params.schema.json").read_text())


@pytest.fixture(scope="module")
def script():
    """scripts/params_schema.py as a module (run here, not in a new process: the stage modules it reads
    the params classes from import torch and the training libraries, which the test process has)."""
    spec = importlib.util.spec_from_file_location("params_schema_script", REPO / "scripts" / "params_schema.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rendered(script) -> str:
    return script.render()


def test_committed_schema_is_current_and_params_yaml_obeys_it(script, rendered):
    assert script.problems(rendered) == []


def test_check_names_an_out_of_date_schema_and_the_params_it_rejects(script, rendered):
    stale = json.loads(rendered)
    del stale["properties"]["ttm"]  # a schema from before the ttm section
    found = script.problems(json.dumps(stale))
    assert found[0] == "docs/params.schema.json is out of date: python scripts/params_schema.py --write"
    assert any("'ttm' was unexpected" in line for line in found[1:]), found


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
