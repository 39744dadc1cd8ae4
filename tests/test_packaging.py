"""pyproject.toml declares what the code imports, the LICENSE it names exists, and the README's
install lines install what their commands need."""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
from pathlib import Path

import nbformat
import pytest

from tests.conftest import REPO_ROOT

tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11's")
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
PACKAGES = ("foresight", "contract", "data", "world_model", "planner", "sim_eval", "configs")
# Imported by the code, installed by a declared distribution that brings them.
PROVIDED_BY = {"gymnasium": "highway_env", "yaml": "omegaconf"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("-", "_")


def _declared(*groups: str) -> set[str]:
    """Normalised distribution names of the main dependencies and of the extras `groups`."""
    names = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    for group in groups:
        names |= {_name(r) for r in PYPROJECT["project"]["optional-dependencies"][group]}
    return names


@functools.cache
def _installed() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _distributions(module: str) -> set[str]:
    """The distributions that install the top-level import `module` (its own name when none is installed)."""
    module = PROVIDED_BY.get(module, module)
    found = _installed().get(module) or [module]
    return {d.lower().replace("-", "_") for d in found}


def _imports(source: str) -> list[tuple[str, bool]]:
    """(top-level module, imported at module level) of every absolute import in `source`."""
    tree = ast.parse(source)
    top_level = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name.split(".")[0], id(node) in top_level) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module.split(".")[0], id(node) in top_level))
    return out


def _third_party(module: str) -> bool:
    return module not in sys.stdlib_module_names and module not in (*PACKAGES, "tests", "benchmarks", "__future__")


def test_every_import_is_declared():
    """Module-level imports of the package and every notebook import are main dependencies; an
    import inside a function (an optional feature) is in the main dependencies or an extra."""
    extras = tuple(PYPROJECT["project"]["optional-dependencies"])
    undeclared = []
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            for module, at_top in _imports(path.read_text()):
                if _third_party(module) and not _distributions(module) & (_declared() if at_top else _declared(*extras)):
                    undeclared.append(f"{path.relative_to(REPO_ROOT)}: {module}")
    for path in sorted((REPO_ROOT / "notebooks").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                undeclared += [f"{path.name}: {m}" for m, _ in _imports(cell.source) if _third_party(m) and not _distributions(m) & _declared()]
    assert undeclared == []


def test_the_tests_need_only_the_dev_extra():
    undeclared = sorted({f"{p.relative_to(REPO_ROOT)}: {m}" for p in (REPO_ROOT / "tests").rglob("*.py") for m, _ in _imports(p.read_text())
                         if _third_party(m) and not _distributions(m) & _declared("dev")} - {"tests/world_model/test_cli_world_model.py: transformers"})
    assert undeclared == []
    assert {"nbclient", "nbconvert", "nbformat", "ipykernel"} <= _declared("dev")  # the tests execute and export the notebooks


def test_the_notebooks_extra_has_jupyter_and_what_the_demo_export_needs():
    from foresight.notebooks import JUPYTER_MODULES

    assert {"jupyterlab", *JUPYTER_MODULES} <= {_name(r) for r in PYPROJECT["project"]["optional-dependencies"]["notebooks"]}


def test_the_readme_demo_command_installs_the_notebooks_extra():
    """The demo's last stage exports the notebooks: its install line must bring Jupyter's packages."""
    readme = (REPO_ROOT / "README.md").read_text()
    block = next(b for b in re.findall(r"```bash\n(.*?)```", readme, flags=re.S) if "pytest" not in b)
    assert re.search(r'pip install [^&]*-e "\.\[notebooks\]"', block), block


def test_the_license_is_the_one_pyproject_names():
    text = (REPO_ROOT / "LICENSE").read_text()
    assert PYPROJECT["project"]["license"] == {"text": "Apache-2.0"}
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
    assert len(text.split()) > 1500  # the full text, not a notice
    assert Path(REPO_ROOT / "LICENSE").stat().st_size > 10_000
