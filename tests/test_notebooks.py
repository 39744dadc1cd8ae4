"""The notebooks in notebooks/ execute top to bottom (nbclient) on small real outputs, with notebooks/
as the working directory (where Jupyter starts them), and find the demo whatever that directory is."""

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from foresight import notebooks
from tests.conftest import REPO_ROOT


def execute(name: str, env: dict[str, str], monkeypatch) -> nbformat.NotebookNode:
    for key in notebooks.NOTEBOOK_ENV:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    nb = nbformat.read(REPO_ROOT / "notebooks" / name, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO_ROOT / "notebooks")}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    return nb


def test_closed_loop_viewer(tmp_path, monkeypatch):
    from foresight.planners import planner_source
    from sim_eval.evaluate import evaluate
    from sim_eval.runner import RunnerConfig

    evaluate(planner_source("expert"), "ncap_side", 1, 0, tmp_path, RunnerConfig.default(image_height=32, image_width=64))
    nb = execute("closed_loop_viewer.ipynb", {"FORESIGHT_EVAL_DIR": str(tmp_path), "FORESIGHT_EPISODE": "0"}, monkeypatch)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "expert on ncap_side" in text and "score" in text


def test_the_demo_directory_does_not_depend_on_the_working_directory(tmp_path, monkeypatch):
    """FORESIGHT_DEMO_DIR wins; without it, <checkout>/runs/demo, found from the package, never from the cwd."""
    checkout = tmp_path / "checkout"
    (checkout / "runs" / "demo").mkdir(parents=True)
    (checkout / "pyproject.toml").touch()
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "runs" / "demo").mkdir(parents=True)  # a runs/demo under the cwd must not be picked
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv(notebooks.DEMO_DIR_ENV, raising=False)
    monkeypatch.setattr(notebooks, "REPO_ROOT", checkout)
    assert notebooks.demo_dir() == checkout / "runs" / "demo"
    monkeypatch.setenv(notebooks.DEMO_DIR_ENV, str(tmp_path / "mine"))
    with pytest.raises(FileNotFoundError, match="no demo outputs at .*mine: run `foresight demo out="):
        notebooks.demo_dir()
    (tmp_path / "mine").mkdir()
    assert notebooks.demo_dir() == tmp_path / "mine"
    monkeypatch.delenv(notebooks.DEMO_DIR_ENV)
    (checkout / "pyproject.toml").unlink()  # installed outside a checkout: say what to set
    with pytest.raises(FileNotFoundError, match="set FORESIGHT_DEMO_DIR"):
        notebooks.demo_dir()


def test_the_viewer_opens_the_planners_nominal_run_else_its_first_suite(tmp_path):
    runs = tmp_path / "eval" / "closed_loop" / "vam"
    for suite in ("ncap_side", "ncap_stationary"):
        (runs / suite).mkdir(parents=True)
        (runs / suite / "metrics.json").write_text(json.dumps({}))
    assert notebooks.closed_loop_dir(tmp_path) == runs / "ncap_side"
    (runs / "nominal").mkdir()
    assert notebooks.closed_loop_dir(tmp_path) == runs / "ncap_side"  # no metrics.json: not a run
    (runs / "nominal" / "metrics.json").write_text("{}")
    assert notebooks.closed_loop_dir(tmp_path) == runs / "nominal"
    with pytest.raises(FileNotFoundError, match="no closed-loop run of 'expert'"):
        notebooks.closed_loop_dir(tmp_path, "expert")


def test_no_notebook_opens_a_path_relative_to_the_working_directory():
    for name in notebooks.NOTEBOOKS:
        code = "\n".join(c.source for c in nbformat.read(REPO_ROOT / "notebooks" / name, as_version=4).cells if c.cell_type == "code")
        assert '"runs/' not in code and "'runs/" not in code, name
        assert "demo_dir()" in code, name


def test_notebooks_run_with_the_notebooks_directory_as_working_directory(tmp_path, monkeypatch):
    """What the demo's export does: with the cwd at notebooks/ (Jupyter's), no FORESIGHT_* but the
    demo directory, and a demo without its stages: the first notebook fails with the message that
    says what is missing, not with a path relative to the cwd."""
    (tmp_path / "demo").mkdir()
    monkeypatch.delenv("FORESIGHT_EVAL_DIR", raising=False)
    with pytest.raises(notebooks.NotebookExportError, match=r"notebooks/closed_loop_viewer.ipynb failed on .*no closed-loop run of 'vam'"):
        notebooks.export_notebooks(tmp_path / "demo", tmp_path / "out", names=("closed_loop_viewer.ipynb",))


def test_export_needs_the_notebooks_extra(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nbconvert" else real(name, *a))
    with pytest.raises(notebooks.NotebookExportError, match=r'needs nbconvert: pip install -e ".\[notebooks\]" \(or notebooks=false'):
        notebooks.check_export_possible()
    monkeypatch.setattr(importlib.util, "find_spec", real)
    with pytest.raises(notebooks.NotebookExportError, match="lacks trajectories.ipynb"):
        notebooks.check_export_possible(Path(tmp_path))
