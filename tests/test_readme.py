"""README snippets run as tests, and the README's test command is what CI runs."""

import re

from tests.conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_ci_runs_exactly_the_readme_test_command():
    commands = [b.strip() for b in _blocks("bash")]
    test_cmd = next(c for c in commands if "pytest" in c)
    ci_lines = [line.strip() for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_cmd in ci_lines


def test_python_snippets_run(tmp_path, monkeypatch):
    snippets = _blocks("python")
    assert snippets
    monkeypatch.chdir(tmp_path)
    for code in snippets:
        if "runs/nuscenes" in code or "runs/demo" in code:
            continue  # needs a converted store / the main command's output: test_readme_dataset_snippet, tests/test_demo.py
        exec(compile(code, "README.md", "exec"), {})


def test_readme_dataset_snippet_on_a_converted_store(tmp_path, monkeypatch):
    from data.store import ClipStoreWriter
    from tests.conftest import turning_clip

    with ClipStoreWriter(tmp_path / "runs" / "nuscenes", "test", {}, codec="raw") as w:
        w.add("a", [turning_clip(num_frames=12, hw=(288, 512))])
    code = next(c for c in _blocks("python") if "runs/nuscenes" in c)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert tuple(scope["item"]["frames"].shape) == (8, 288, 512, 3)


# The main command (`foresight demo`) runs in tests/test_demo.py at profile=smoke.


def _resolves(dotted: str) -> bool:
    """`pkg.module.Name.attr` imports: the longest importable module prefix, then attributes (a
    dataclass field counts as an attribute of its class)."""
    import dataclasses
    import importlib

    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            if dataclasses.is_dataclass(obj) and name in {f.name for f in dataclasses.fields(obj)}:
                return name == parts[-1]
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def test_the_glossary_names_code_that_exists():
    glossary = README[README.index("## Glossary"):README.index("## Data licenses")]
    names = {n for n in re.findall(r"`([a-z_]+(?:\.[A-Za-z_]+)+)`", glossary) if n.split(".")[0] in {"data", "world_model", "planner", "sim_eval", "contract", "foresight"}}
    assert len(names) > 15
    assert [n for n in sorted(names) if not _resolves(n)] == []
