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
        if "runs/nuscenes" in code:
            continue  # needs the main command's output; covered by test_readme_dataset_snippet
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
