"""The notebooks in notebooks/ execute top to bottom (nbclient) on small real outputs."""


import nbformat
from nbclient import NotebookClient

from tests.conftest import REPO_ROOT


def execute(name: str, env: dict[str, str], monkeypatch) -> nbformat.NotebookNode:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    nb = nbformat.read(REPO_ROOT / "notebooks" / name, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO_ROOT)}}).execute()
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
