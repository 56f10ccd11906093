"""Paths typed once: a path one stage writes and another reads is written only in dvc.yaml's ``vars:
paths``; stage scripts get it through the flags their ``stage_args`` declares, which dvc.yaml's cmd passes."""

from __future__ import annotations

import ast
import re
import shlex

import pytest

from tests.conftest import REPO, dvc_yaml, stage_argv, stage_outputs, with_paths

STAGES = dvc_yaml()["stages"]
PATH_LITERAL = re.compile(r"^(data|models)/")  # the roots of the pipeline's data


def declared_args(stage: str) -> tuple[list[str], list[str]]:
    """The positional names and ``--flags`` that ``stages/<stage>.py`` passes to ``stage_args``."""
    tree = ast.parse((REPO / "stages" / f"{stage}.py").read_text())
    calls = [
        n for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "stage_args"
    ]  # fmt: skip
    if not calls:
        return [], []
    (call,) = calls
    return [a.value for a in call.args], ["--" + k.arg.replace("_", "-") for k in call.keywords]


@pytest.mark.parametrize("stage", STAGES)
def test_cmd_passes_exactly_the_flags_the_script_takes(stage):
    spec = STAGES[stage].get("do", STAGES[stage])
    tokens = shlex.split(spec["cmd"])
    script = next(i for i, t in enumerate(tokens) if t == f"stages/{stage}.py")
    names, flags = declared_args(stage)
    passed = [t for t in tokens[script + 1 :] if t.startswith("--")]
    assert passed == flags, f"dvc.yaml's cmd of {stage} passes {passed}; stages/{stage}.py takes {flags}"
    positional = tokens[script + 1 : script + 1 + len(names)]
    assert len(positional) == len(names) and not any(t.startswith("--") for t in positional), (stage, tokens)
    for flag, value in zip(tokens[script + 1 :], tokens[script + 2 :]):
        if flag.startswith("--"):  # every path comes from the vars, a grid cell at most appended
            assert value.startswith("${paths."), f"{stage}: {flag} {value} is not a ${{paths.*}} var"


def test_no_stage_script_names_a_data_path():
    found = []
    for script in sorted((REPO / "stages").glob("*.py")):
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and PATH_LITERAL.match(node.value):
                found.append(f"{script.name}:{node.lineno}: {node.value!r}")
    assert not found, "stage scripts take their data paths from the command line:\n" + "\n".join(found)


def test_dvc_yaml_types_each_data_path_once():
    """Outside ``vars: paths`` (and comments), dvc.yaml names no data path literally: deps and outs say
    ``${paths.<name>}`` or a param's ``${section.key}``."""
    text = (REPO / "dvc.yaml").read_text()
    body = "\n".join(line.split("#")[0] for line in text[text.index("\nstages:") :].splitlines())
    literal = sorted(set(re.findall(r"(?<![\w/{}.$])data/[\w/.-]+", body)))
    assert not literal, literal
    paths = next(v["paths"] for v in dvc_yaml()["vars"] if "paths" in v)
    assert len(set(paths.values())) == len(paths), "two names for one path"
    unused = [name for name in paths if f"${{paths.{name}}}" not in body]
    assert not unused, f"vars paths no stage uses: {unused}"


def test_a_path_reaches_producer_and_consumer_from_one_entry():
    ucr = with_paths("${paths.ucr}")
    assert ucr in stage_outputs("prepare_ucr")
    assert stage_argv("baseline", ("GunPoint",)) == ["GunPoint", "--ucr", ucr]
