"""Plug-in planners (`planner=package.module:ClassName`): the README's example planner through
`eval closed_loop` (in worker processes) and `serve`, `eval ablation` with a planner that takes a
video mode, and one clear error for each way an import string can be wrong."""

from __future__ import annotations

import http.client
import importlib
import json
import os
import pickle
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from configs import compose
from contract import Observation
from foresight.cli import main
from foresight.planners import build_planner, planner_options, planner_source
from foresight.serve import serve_setup
from planner.server.announce import wait_for_port
from tests.planner.test_server import infer_payload

REPO_ROOT = Path(__file__).resolve().parents[2]
README = (REPO_ROOT / "README.md").read_text()
SMALL = ["suite=smoke", "videos=0", "runner.image_height=32", "runner.image_width=64"]

# As the `foresight` console script runs: the working directory is NOT on sys.path (unlike
# `python -c` / `python -m`), so a module saved there must be found by the planner registry itself.
CONSOLE_SCRIPT = "import sys; del sys.path[0]; from foresight.cli import main; sys.exit(main(sys.argv[1:]))"


def readme_example() -> tuple[str, str, list[str], list[str]]:
    """(module name, module source, the `eval closed_loop` command's planner tokens, the `serve`
    command's planner tokens) of the README's "Your own planner" section."""
    section = README[README.index("### Your own planner"):]
    section = section[:section.index("\n## ")]
    code = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    commands = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    assert len(code) == 1 and len(commands) == 1, "the section holds one planner module and one block of commands"
    lines = [line.split() for line in commands[0].strip().splitlines()]
    eval_line = next(t for t in lines if t[1:3] == ["eval", "closed_loop"])
    serve_line = next(t for t in lines if t[1] == "serve")
    planner_tokens = [[t for t in line if t.startswith(("planner=", "+planner_options."))] for line in (eval_line, serve_line)]
    module = re.fullmatch(r"planner=(\w+):\w+", planner_tokens[0][0]).group(1)
    assert f"`{module}.py`" in section, "the section says which file the module is saved as"
    return module, code[0], planner_tokens[0], planner_tokens[1]


def tokens_to_config(tokens: list[str]) -> tuple[str, dict]:
    """(planner, planner_options) that the Hydra overrides `tokens` set (values parsed as YAML)."""
    spec = next(t.split("=", 1)[1] for t in tokens if t.startswith("planner="))
    options = {t.split("=", 1)[0].removeprefix("+planner_options."): yaml.safe_load(t.split("=", 1)[1]) for t in tokens if t.startswith("+planner_options.")}
    return spec, options


def console_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}


@pytest.fixture
def example(tmp_path, monkeypatch):
    """The README's planner module written to tmp_path/<module>.py, tmp_path the working directory."""
    module, source, eval_tokens, serve_tokens = readme_example()
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path, eval_tokens, serve_tokens
    sys.modules.pop(module, None)


def test_the_readme_planner_runs_in_closed_loop_in_worker_processes(example):
    tmp_path, eval_tokens, _ = example
    spec, options = tokens_to_config(eval_tokens)
    assert options, "the README example passes an option"
    out = tmp_path / "run"
    args = ["eval", "closed_loop", *eval_tokens, *SMALL, "episodes=2", "workers=2", f"out={out}"]
    done = subprocess.run([sys.executable, "-c", CONSOLE_SCRIPT, *args], cwd=tmp_path, env=console_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["planner"] == spec and metrics["planner_config"] == options  # what ran, rebuildable
    assert metrics["num_episodes"] == 2 and metrics["batch_size"] == 1  # two groups: two worker processes
    assert metrics["submetrics"]["failure_rate"] == 0.0  # it never raised or returned an unusable plan
    # The record rebuilds the same planner (as notebooks/closed_loop_viewer.ipynb does).
    rebuilt = build_planner(metrics["planner"], metrics["planner_config"])
    assert all(getattr(rebuilt, key) == value for key, value in options.items())


def _observation(speed_mps: float) -> Observation:
    return Observation(
        frames_rgb=np.zeros((1, 4, 4, 3), np.uint8), frame_timestamps_s=np.zeros(1), ego_history_xyyaw=np.zeros((1, 3)),
        ego_history_timestamps_s=np.zeros(1), speed_mps=speed_mps, accel_mps2=0.0, yaw_rate_rps=0.0, command=2,
        camera_intrinsics=np.array([[100.0, 0.0, 2.0], [0.0, 100.0, 2.0], [0.0, 0.0, 1.0]]), time_s=0.0,
    )


def test_the_readme_planner_is_served_with_its_options(example):
    tmp_path, _, serve_tokens = example
    spec, options = tokens_to_config(serve_tokens)
    process = subprocess.Popen([sys.executable, "-c", CONSOLE_SCRIPT, "serve", *serve_tokens, "port=0"], cwd=tmp_path,
                               env=console_env(), stderr=subprocess.PIPE, text=True)
    try:
        port, lines = wait_for_port(process.stderr, timeout_s=60)
        assert port is not None, "".join(lines)

        def request(method: str, path: str, body: dict | None = None):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                connection.request(method, path, body=None if body is None else json.dumps(body), headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                return response.status, json.loads(response.read())
            finally:
                connection.close()

        assert request("GET", "/alive") == (200, True)
        assert request("POST", "/reset", {}) == (200, True)
        status, body = request("POST", "/infer", infer_payload(0, speed_mps=8.0))
        assert status == 200, body
        served = np.array(body["trajectory"])
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stderr.close()
    # The server's planner is the README class built with the README's options: its plan from the
    # same ego status (8 m/s, driving straight), and not the plan of the class's defaults.
    with_options = build_planner(spec, options).plan(_observation(8.0)).waypoints[:, :2]
    defaults = build_planner(spec).plan(_observation(8.0)).waypoints[:, :2]
    np.testing.assert_allclose(served, with_options, atol=1e-9)
    assert not np.allclose(served, defaults)


def test_serve_setup_builds_the_plugin_with_planner_options(example):
    _, _, serve_tokens = example
    spec, options = tokens_to_config(serve_tokens)
    setup = serve_setup(compose("serve", [*serve_tokens, "port=0"]))
    assert type(setup.planner).__name__ == spec.split(":")[1]
    assert all(getattr(setup.planner, key) == value for key, value in options.items())


def test_a_plugin_source_pickles_by_import_string(example):
    _, eval_tokens, _ = example
    spec, options = tokens_to_config(eval_tokens)
    source = planner_source(spec, options)
    assert (source.name, source.options) == (spec, options)
    # The builder holds the import string, not the class: a worker process imports the module itself.
    assert source.make.func is build_planner and source.make.args == (spec, options)
    assert pickle.loads(pickle.dumps(source.make))().max_speed_mps == options["max_speed_mps"]


MODULES = {
    "broken_at_import.py": "raise RuntimeError('no GPU driver found')\n",
    "needs_missing_dep.py": "import definitely_not_installed_dep_xyz\n",
    "not_planners.py": textwrap.dedent(
        """
        from contract import Planner

        def make_planner():
            return None

        class Tool:
            pass

        class Half(Planner):
            name = "half"

            def reset(self, episode):
                pass
        """
    ),
    "fussy.py": textwrap.dedent(
        """
        from contract import FixedHorizonPlanner, Plan

        class Fussy(FixedHorizonPlanner):
            def __init__(self, horizon_s: float = 3.0):
                if horizon_s <= 0:
                    raise ValueError(f"horizon_s must be > 0, got {horizon_s}")
                super().__init__(num_waypoints=int(horizon_s / 0.5), plan_dt_s=0.5)

            def reset(self, episode):
                pass

            def plan(self, observation):
                raise NotImplementedError

        class FromOptions(Fussy):
            seen = None

            @classmethod
            def from_options(cls, options):
                planner = cls(horizon_s=float(options.pop("horizon_min", 0.05)) * 60)
                planner.seen = dict(options)
                return planner

        class ReturnsNone(Fussy):
            @classmethod
            def from_options(cls, options):
                return None
        """
    ),
    "video_planner.py": textwrap.dedent(
        """
        import numpy as np

        from contract import FixedHorizonPlanner, Plan

        class VideoModePlanner(FixedHorizonPlanner):
            \"\"\"Constant velocity, slower the less video it sees (stands in for a video planner).\"\"\"

            uses_camera = False
            SPEED_FACTOR = {"observed": 1.0, "imagine": 0.8, "none": 0.5}

            def __init__(self, video_mode: str = "observed", horizon: int = 6):
                super().__init__(num_waypoints=horizon, plan_dt_s=0.5)
                self.video_mode = video_mode

            def reset(self, episode):
                pass

            def plan(self, observation):
                t = self.plan_dt_s * np.arange(1, self.num_waypoints + 1)
                x = max(observation.speed_mps, 0.0) * self.SPEED_FACTOR[self.video_mode] * t
                return Plan(waypoints=np.stack([x, 0.0 * t], axis=1), dt_s=self.plan_dt_s)
        """
    ),
}


@pytest.fixture
def modules(example):
    tmp_path = example[0]
    for name, text in MODULES.items():
        (tmp_path / name).write_text(text)
    importlib.invalidate_caches()
    yield tmp_path
    for name in MODULES:
        sys.modules.pop(name.removesuffix(".py"), None)


@pytest.mark.parametrize(
    "spec,extra,named",
    [
        ("no_such_module_xyz:P", [], ["cannot import module 'no_such_module_xyz'", "ModuleNotFoundError", "working directory"]),
        ("broken_at_import:P", [], ["importing module 'broken_at_import' raised RuntimeError: no GPU driver found"]),
        ("needs_missing_dep:P", [], ["importing module 'needs_missing_dep' raised ModuleNotFoundError", "definitely_not_installed_dep_xyz"]),
        ("cautious:Nope", [], ["module 'cautious'", "has no attribute 'Nope'", "the Planner classes it defines: CautiousPlanner"]),
        ("not_planners:Tool", [], ["is the class Tool, not a subclass of contract.Planner"]),
        ("not_planners:make_planner", [], ["is a function, not a subclass of contract.Planner"]),
        ("not_planners:Half", [], ["Half is abstract", "num_waypoints, plan, plan_dt_s"]),
        ("cautious:CautiousPlanner", ["+planner_options.top_speed=3"], ["CautiousPlanner(**{'top_speed': 3}) raised TypeError", "top_speed"]),
        ("fussy:Fussy", ["+planner_options.horizon_s=-1"], ["'fussy:Fussy': Fussy(**{'horizon_s': -1}) raised ValueError: horizon_s must be > 0"]),
        ("fussy:ReturnsNone", [], ["ReturnsNone.from_options({}) returned a NoneType, not a contract.Planner"]),
        ("cautious:CautiousPlanner", ["checkpoint=runs/planner/vam"], ["checkpoint= is read by the vam and ego_mlp planners only", "+planner_options"]),
        ("constant_velocity", ["+planner_options.speed=3"], ["planner_options are for plug-in planners", "baselines.constant_velocity"]),
        ("cautious:Cautious-Planner", [], ["is not an import string", "package.module:ClassName"]),
    ],
)
def test_a_bad_plugin_is_one_clear_error_before_any_work(modules, capsys, spec, extra, named):
    out = modules / "run"
    assert main(["eval", "closed_loop", f"planner={spec}", *extra, *SMALL, "episodes=1", "workers=1", f"out={out}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("foresight eval closed_loop: error: ") and "Traceback" not in err
    assert all(text in err for text in named), err
    assert not out.exists()
    assert main(["serve", f"planner={spec}", *extra, "port=0"]) == 1  # serve refuses it the same way
    err = capsys.readouterr().err
    assert err.startswith("foresight serve: error: ") and all(text in err for text in named), err


def test_from_options_receives_the_options_as_a_dict(modules):
    planner = build_planner("fussy:FromOptions", {"horizon_min": 0.05, "note": "kept"})
    assert planner.num_waypoints == 6 and planner.seen == {"note": "kept"}
    nested = planner_options("fussy:FromOptions", compose("serve", ["planner=fussy:FromOptions", "+planner_options.note=kept"]))
    assert nested == {"note": "kept"}


def test_ablation_runs_a_plugin_that_takes_a_video_mode(modules):
    out = modules / "ablation"
    args = ["eval", "ablation", "planner=video_planner:VideoModePlanner", "+planner_options.horizon=8", "suites=[smoke]",
            "episodes=1", "workers=1", "reference_baselines=[constant_velocity]", "runner.image_height=32", "runner.image_width=64", f"out={out}"]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["ablation"]) == ["observed", "imagine", "no_video", "constant_velocity"]
    assert "video_planner:VideoModePlanner with video_mode=none" in metrics["variants"]["no_video"]
    for row, mode in (("observed", "observed"), ("imagine", "imagine"), ("no_video", "none")):
        run = json.loads((out / "runs" / row / "smoke" / "metrics.json").read_text())
        assert run["planner"] == "video_planner:VideoModePlanner" and run["planner_config"] == {"horizon": 8, "video_mode": mode}


@pytest.mark.parametrize(
    "planner,extra,named",
    [
        ("cautious:CautiousPlanner", [], ["takes no video_mode option", "CautiousPlanner(max_speed_mps: float = 6.0", "eval closed_loop planner=cautious:CautiousPlanner"]),
        ("video_planner:VideoModePlanner", ["+planner_options.video_mode=none"], ["sets video_mode itself"]),
        ("video_planner:VideoModePlanner", ["imagine_checkpoint=x"], ["imagine_checkpoint= is read for planner=vam only"]),
        ("constant_velocity", [], ["'constant_velocity' has no video mode", "reference_baselines"]),
        ("vam", [], ["planner=vam needs checkpoint="]),
    ],
)
def test_ablation_refuses_a_planner_without_a_video_mode(modules, capsys, planner, extra, named):
    out = modules / "ablation"
    assert main(["eval", "ablation", f"planner={planner}", *extra, "suites=[smoke]", "episodes=1", f"out={out}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("foresight eval ablation: error: ") and all(text in err for text in named), err
    assert not out.exists()
