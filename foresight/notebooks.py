"""The notebooks in notebooks/: where they find the demo's outputs, and their export as HTML.

A notebook reads FORESIGHT_DEMO_DIR when set, else the checkout's runs/demo (where the README's
demo command writes), found from this package's location, so it works whatever directory Jupyter
starts in. The demo executes each notebook on its own outputs (nbclient, with notebooks/ as the
working directory, as Jupyter runs it) and writes it, code, text and figures, as one
self-contained page DIR/notebooks/<name>.html (nbconvert; figures are base64 PNGs in the page),
beside the executed notebook DIR/notebooks/<name>.ipynb (opens in Jupyter with its outputs).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = ("trajectories.ipynb", "world_model_rollout.ipynb", "closed_loop_viewer.ipynb")
DEMO_DIR_ENV = "FORESIGHT_DEMO_DIR"
# Variables that point one notebook at other inputs; the demo's export clears them so that every
# notebook shows this demo's outputs.
NOTEBOOK_ENV = (DEMO_DIR_ENV, "FORESIGHT_EVAL_DIR", "FORESIGHT_EPISODE", "FORESIGHT_CHECKPOINT", "FORESIGHT_CLIPS")
JUPYTER_MODULES = ("nbformat", "nbclient", "nbconvert", "ipykernel")


class NotebookExportError(ValueError):
    """The notebooks cannot be exported: Jupyter's packages are missing, notebooks/ is not there,
    or a notebook failed (the CLI prints it as one line)."""


def demo_dir() -> Path:
    """The demo's output directory: $FORESIGHT_DEMO_DIR, else <checkout>/runs/demo. Raises
    FileNotFoundError, saying how to make it, when the directory does not exist."""
    env = os.environ.get(DEMO_DIR_ENV)
    if env:
        path = Path(env).expanduser().resolve()
    elif (REPO_ROOT / "pyproject.toml").is_file():
        path = REPO_ROOT / "runs" / "demo"
    else:
        raise FileNotFoundError(f"foresight is installed outside a checkout ({REPO_ROOT}): set {DEMO_DIR_ENV} to the output directory of `foresight demo`")
    if not path.is_dir():
        raise FileNotFoundError(f"no demo outputs at {path}: run `foresight demo out={path}` first, or set {DEMO_DIR_ENV} to another demo's directory")
    return path


def closed_loop_dir(demo: Path, planner: str = "vam") -> Path:
    """One closed-loop run of `planner` in the demo `demo`: its `nominal` suite when the demo ran it,
    else its first suite in name order (DIR/eval/closed_loop/<planner>/<suite>)."""
    runs = Path(demo) / "eval" / "closed_loop" / planner
    suites = sorted(p for p in runs.glob("*") if (p / "metrics.json").is_file())
    if not suites:
        raise FileNotFoundError(f"no closed-loop run of {planner!r} in {runs}")
    return next((p for p in suites if p.name == "nominal"), suites[0])


def missing_jupyter_modules() -> list[str]:
    """The packages the export needs (the `notebooks` extra) that are not installed."""
    import importlib.util

    return [name for name in JUPYTER_MODULES if importlib.util.find_spec(name) is None]


def check_export_possible(notebooks_dir: Path = NOTEBOOKS_DIR) -> None:
    """Raise NotebookExportError before the demo starts when the export could not run at its end."""
    missing = missing_jupyter_modules()
    if missing:
        raise NotebookExportError(f"exporting the notebooks needs {', '.join(missing)}: pip install -e \".[notebooks]\" (or notebooks=false to skip them)")
    absent = [n for n in NOTEBOOKS if not (notebooks_dir / n).is_file()]
    if absent:
        raise NotebookExportError(f"{notebooks_dir} lacks {', '.join(absent)} (foresight installed outside its checkout?): notebooks=false skips the export")


@dataclass(frozen=True)
class ExportedNotebook:
    """One notebook executed and written as HTML (and as an executed .ipynb): `images` PNG figures
    embedded, `seconds` of wall time."""

    name: str
    html: Path
    executed: Path
    images: int
    seconds: float


# The page must open offline: nbconvert's templates load require.js / MathJax / mermaid from a CDN,
# which these notebooks (no widgets, no maths) never use.
_REMOTE_SCRIPT = re.compile(r"<script[^>]*\bsrc=\"https?://[^\"]*\"[^>]*>\s*</script>\s*")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colours in a kernel's traceback
_REMOTE_MODULE = re.compile(r"<script type=\"module\">(?:(?!</script>).)*?https?://(?:(?!</script>).)*</script>\s*", re.S)


def export_notebooks(demo: Path, out: Path, names: tuple[str, ...] = NOTEBOOKS, notebooks_dir: Path = NOTEBOOKS_DIR,
                     timeout_s: int = 900) -> list[ExportedNotebook]:
    """Execute each notebook of `notebooks_dir` on the demo `demo` (its working directory:
    `notebooks_dir`) and write `out`/<name>.html with its outputs; raises NotebookExportError naming
    the notebook whose cell failed. Also writes the executed notebook as `out`/<name>.ipynb."""
    check_export_possible(notebooks_dir)
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from nbconvert import HTMLExporter

    out.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in NOTEBOOK_ENV}
    env[DEMO_DIR_ENV] = str(Path(demo).resolve())
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # figures as PNG outputs, whatever the caller set
    exporter = HTMLExporter(template_name="lab")
    exported = []
    for name in names:
        started = time.perf_counter()
        nb = nbformat.read(notebooks_dir / name, as_version=4)
        client = NotebookClient(nb, timeout=timeout_s, kernel_name="python3", resources={"metadata": {"path": str(notebooks_dir)}})
        try:
            client.execute(env=env)
        except CellExecutionError as exc:
            lines = _ANSI.sub("", str(exc)).strip().splitlines()
            last = lines[-1] if lines else type(exc).__name__
            raise NotebookExportError(f"notebooks/{name} failed on {demo}: {last}") from exc
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": Path(name).stem}})
        body = _REMOTE_MODULE.sub("", _REMOTE_SCRIPT.sub("", body))
        html, executed = out / f"{Path(name).stem}.html", out / name
        for path, text in ((executed, nbformat.writes(nb)), (html, body)):
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text)
            tmp.replace(path)
        exported.append(ExportedNotebook(name, html, executed, body.count('src="data:image/png;base64,'), time.perf_counter() - started))
    return exported
