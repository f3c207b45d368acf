"""The two ways to install agree: environment.yml (conda) lists the same packages, at the same lower bounds, as
pyproject.toml's dependencies and its `test` extra (pip, `make`)."""
import re
from pathlib import Path

import pytest
import yaml

tomllib = pytest.importorskip("tomllib")      # Python >= 3.11

REPO = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"torch": "pytorch"}            # the same package under conda-forge's name
CONDA_ONLY = {"python", "pip", "openjdk"}     # the interpreter, the installer, and Java for pycocoevalcap's METEOR


def _requirement(text: str) -> tuple[str, str]:
    name, spec = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*", text).groups()
    return name.lower(), spec.replace(" ", "")


def test_environment_yml_lists_what_pyproject_lists():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pip_side = dict(map(_requirement, project["dependencies"] + project["optional-dependencies"]["test"]))
    env = yaml.safe_load((REPO / "environment.yml").read_text())["dependencies"]
    conda = dict(_requirement(d) for d in env if isinstance(d, str))
    pip_in_conda = dict(_requirement(d) for group in env if isinstance(group, dict) for d in group["pip"]
                        if not d.startswith("-e"))
    assert conda.pop("python") == project["requires-python"]
    conda_side = {name: spec for name, spec in {**conda, **pip_in_conda}.items() if name not in CONDA_ONLY}
    expected = {CONDA_NAMES.get(name, name): spec for name, spec in pip_side.items()}
    assert conda_side == expected, {"only in environment.yml": conda_side.keys() - expected.keys(),
                                    "only in pyproject.toml": expected.keys() - conda_side.keys(),
                                    "other bounds": {n for n in conda_side.keys() & expected.keys() if conda_side[n] != expected[n]}}
