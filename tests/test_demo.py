"""`foresight demo` (the README's main command) end to end at the smoke profile, its report, and
the notebooks that read its outputs. One demo run per module (xdist_group keeps it on one worker)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import nbformat
import numpy as np
import pytest

from foresight.cli import main
from foresight.demo import DemoPaths, Stage, build_stages, run_stages
from foresight.notebooks import NOTEBOOKS
from foresight.report import ReportMedia, build_markdown, collect_metrics
from foresight.report_check import check_report_html
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.xdist_group("demo")
README = (REPO_ROOT / "README.md").read_text()


def readme_main_command() -> list[str]:
    """The `foresight ...` part of the README's main command (the first bash block without pytest)."""
    block = next(b for b in re.findall(r"```bash\n(.*?)```", README, flags=re.S) if "pytest" not in b)
    steps = [s.strip() for s in block.split("&&") if s.strip().startswith("foresight ")]
    assert len(steps) == 1, steps
    return shlex.split(steps[0])[1:]


@pytest.fixture(scope="module")
def demo(tmp_path_factory, request):
    """The README's main command, at profile=smoke, in a fresh directory."""
    root = tmp_path_factory.mktemp("demo")
    words = [w for w in readme_main_command() if not w.startswith("out=")]
    assert words[0] == "demo"
    assert main([*words, f"out={root / 'demo'}", "profile=smoke"]) == 0
    return root / "demo"


def test_demo_writes_every_number_the_report_promises(demo):
    m = json.loads((demo / "metrics.json").read_text())
    for planner in ("vam", "ego_mlp", "constant_velocity", "expert"):
        row = m["closed_loop"][planner]["ncap_stationary"]
        assert {"score", "ncap_score", "collision_rate", "submetrics"} <= set(row)
        assert 0 <= row["score"] <= 1 and 0 <= row["ncap_score"] <= 5
    assert m["closed_loop"]["expert"]["ncap_stationary"]["collision_rate"] == 0.0
    assert m["closed_loop"]["constant_velocity"]["ncap_stationary"]["collision_rate"] == 1.0  # drives into the obstacle
    wm = m["world_model"]
    assert 5 < wm["psnr_t1"] < 60 and 5 < wm["psnr_copy_last_t1"] < 60 and "gain_vs_copy_last_t1_stderr" in wm
    assert m["open_loop"]["vam"]["min_ade"] >= 0 and m["open_loop"]["constant_velocity"]["min_ade"] >= 0
    assert set(m["ablation"]) >= {"observed", "imagine", "no_video", "constant_velocity"}
    stages = [s.name for s in build_stages(m_profile(demo), DemoPaths(demo), "auto")] + ["export_notebooks"]
    assert list(m["stage_seconds"]) == stages and all(v > 0 for v in m["stage_seconds"].values())
    vam = m["closed_loop"]["vam"]["ncap_stationary"]
    assert "score_stderr" in vam and "ncap_score_stderr" in vam  # None at one episode: no spread to estimate
    assert set(m["verdict"]) >= {"world_model_beats_copy_last_t1", "vam_beats_constant_velocity_closed_loop_ncap_stationary"}
    # The smoke profile runs one DAgger round: the trained planner's and the round's closed-loop check.
    assert [r["round"] for r in m["dagger_rounds"]] == [0, 1] and m["dagger_rounds"][1]["windows_added"] > 0
    assert all(0 <= r["validation_score"] <= 1 for r in m["dagger_rounds"])
    evaluated = json.loads((demo / "eval" / "closed_loop" / "vam" / "ncap_stationary" / "metrics.json").read_text())
    assert evaluated["planner_config"]["checkpoint"].endswith("round_01/train/vam")  # the last round's planner


def m_profile(demo) -> dict:
    return json.loads((demo / "stages" / "profile.json").read_text())


def test_report_has_every_section_and_embeds_its_media(demo):
    md = (demo / "report.md").read_text()
    headings = re.findall(r"^## (.+)$", md, flags=re.M)
    order = ["Verdict", "Closed-loop episodes", "World-model rollouts", "Figures", "Notebooks", "Stage times", "World model vs copy-last-frame",
             "Open loop", "Closed loop", "DAgger rounds", "Ablation", "Metric definitions", "Commands"]
    assert [next(h for h in headings if h.startswith(o)) for o in order] == [h for h in headings if any(h.startswith(o) for o in order)]
    assert md.index("![Summary") < md.index("## Verdict") < md.index("| ")  # the summary figure first, the tables after the pictures
    assert "did not run" not in md and "sim_eval.md" not in md and "## Metric definitions" in md
    links = re.findall(r"\]\(([^)]+)\)", md)
    for link in links:
        assert (demo / link).is_file(), link
    videos = sorted(p.relative_to(demo).as_posix() for p in (demo / "eval" / "closed_loop").glob("*/*/videos/*.mp4"))
    strips = [link for link in links if link.startswith("figures/strips/")]
    assert len(videos) == 4 and set(videos) <= set(links) and len(strips) == len(videos)  # a still strip above every episode video
    assert "figures/world_model_rollouts.png" in links and "figures/dagger_rounds.png" in links
    assert sorted(link for link in links if link.startswith("notebooks/")) == sorted(f"notebooks/{Path(n).stem}.html" for n in NOTEBOOKS)
    html = (demo / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 7 and "data:video/mp4;base64," in html and "<table>" in html
    page = check_report_html(html, demo)
    assert page.ok and page.figure_before_table and page.broken_images == ()
    # The planner's closed-loop video shows camera | predicted next frame | bird's-eye view.
    import imageio.v3 as iio

    (video,) = (demo / "eval" / "closed_loop" / "vam" / "ncap_stationary" / "videos").glob("*.mp4")
    frame = iio.imread(video, index=0)
    assert frame.shape[1] > 2 * frame.shape[0] + 256  # three panels (144x256, 144x256, 144x144)


def test_rerun_skips_finished_stages_and_rebuilds_the_same_report(demo, capsys):
    before = json.loads((demo / "metrics.json").read_text())
    assert main(["demo", f"out={demo}", "profile=smoke"]) == 0
    out = capsys.readouterr().out
    assert out.count("skipped") == len(before["stage_seconds"])
    assert json.loads((demo / "metrics.json").read_text()) == before


def test_an_interrupted_demo_resumes_at_the_failed_stage(tmp_path):
    ran: list[str] = []

    def runner(stage: Stage) -> None:
        ran.append(stage.name)
        stage.out.mkdir(exist_ok=True)
        (stage.out / "partial").touch()  # what a killed stage leaves behind: kept, the command resumes from it
        if stage.name == "b" and ran.count("b") == 1:
            raise KeyboardInterrupt  # killed during stage b

    def stages(b_arg: str = "x=2") -> list[Stage]:
        return [Stage(name, ("data", "synth"), (arg,), out=tmp_path / name) for name, arg in (("a", "x=1"), ("b", b_arg), ("c", "x=3"))]

    by_command = Stage.command_line  # stands in for the composed-config fingerprint
    with pytest.raises(KeyboardInterrupt):
        run_stages(tmp_path, stages(), runner, by_command)
    assert (tmp_path / "b" / "partial").is_file()
    seconds = run_stages(tmp_path, stages(), runner, by_command)
    assert ran == ["a", "b", "b", "c"] and list(seconds) == ["a", "b", "c"]
    assert run_stages(tmp_path, stages(), runner, by_command) and ran == ["a", "b", "b", "c"]  # all done: nothing runs
    # b's config changed: b starts over (its old output removed) and c, which reads b's output, runs again.
    (tmp_path / "b" / "stale").touch()
    run_stages(tmp_path, stages("x=20"), runner, by_command)
    assert ran[-2:] == ["b", "c"] and not (tmp_path / "b" / "stale").exists() and (tmp_path / "a" / "partial").is_file()


def test_stage_fingerprint_follows_the_composed_config_not_only_the_command_line(tmp_path):
    a = Stage("synth", ("data", "synth"), (f"out={tmp_path}", "episodes=2"))
    assert a.fingerprint() == Stage("synth", ("data", "synth"), (f"out={tmp_path}", "episodes=2")).fingerprint()
    assert a.fingerprint() != Stage("synth", ("data", "synth"), (f"out={tmp_path}", "episodes=3")).fingerprint()
    # A planner setting changes the planner stage only, not the tokenizer or world-model stages it
    # would otherwise retrain (every experiment= composes all three profiles)
    for words, own in ((("train", "tokenizer"), "tokenizer.max_steps=7"), (("train", "world_model"), "world_model.max_steps=7"),
                       (("train", "planner"), "planner.train.max_steps=7")):
        base = ("experiment=tiny", f"out={tmp_path}")
        same = Stage("s", words, base).fingerprint()
        tuned = Stage("s", words, (*base, "planner.train.lr=0.5")).fingerprint()
        assert (same == tuned) == (words != ("train", "planner")), words
        assert same != Stage("s", words, (*base, own)).fingerprint(), words


def test_a_report_without_runs_says_so(tmp_path):
    from omegaconf import OmegaConf

    from configs import compose

    profile = OmegaConf.to_container(compose("demo", ["out=x"]).profile, resolve=True)
    metrics = collect_metrics(DemoPaths(tmp_path), profile, {})
    md = build_markdown(metrics, profile, [], ReportMedia(), tmp_path)
    assert md.count("did not run") == 5 and metrics["verdict"] == {}


def exported(demo: Path, name: str) -> nbformat.NotebookNode:
    """The notebook as the demo executed it (cwd notebooks/, FORESIGHT_DEMO_DIR only); its HTML page
    embeds the same figures."""
    nb = nbformat.read(demo / "notebooks" / name, as_version=4)
    html = (demo / "notebooks" / name.replace(".ipynb", ".html")).read_text()
    assert html.count('src="data:image/png;base64,') == images(nb) > 0
    return nb


def test_trajectory_notebook(demo):
    text = outputs_text(exported(demo, "trajectories.ipynb"))
    assert "windows in" in text and text.count("minADE") == 4
    assert images(exported(demo, "trajectories.ipynb")) == 2


def test_world_model_rollout_notebook(demo):
    nb = exported(demo, "world_model_rollout.ipynb")
    # The rollout grid, and the counterfactual strip of the (ego-motion-conditioned) demo world model.
    assert "t+1: PSNR predicted" in outputs_text(nb) and images(nb) == 2
    assert "not conditioned" not in outputs_text(nb)


def test_closed_loop_viewer_replays_the_demo_planner(demo):
    """Without FORESIGHT_EVAL_DIR, the viewer opens the demo's planner run (its only suite here)."""
    nb = exported(demo, "closed_loop_viewer.ipynb")
    assert "vam on ncap_stationary" in outputs_text(nb) and images(nb) == 2


def test_report_screenshot_in_chromium(demo, tmp_path):
    """benchmarks/report_screenshot.py: the browser loads every image and shows the summary figure
    above the first table (skipped where Chromium is not installed)."""
    import shutil
    import subprocess
    import sys

    if not any(shutil.which(c) for c in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")):
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    shot = tmp_path / "shot.png"
    run = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "report_screenshot.py"), str(demo), "--screenshot", str(shot)],
                         capture_output=True, text=True, timeout=300)
    result = json.loads(run.stdout)
    assert run.returncode == 0 and result["ok"] and result["broken_images"] == 0 and result["figure_before_table"], run.stdout + run.stderr
    assert result["images"] >= 7 and shot.stat().st_size > 10_000


def test_the_demo_planner_is_the_same_in_python_and_in_the_cli(demo):
    """`VAMPlanner.from_checkpoint(DIR/planner/vam)` and the registry that `foresight eval` / `serve`
    use build the same planner: identical plans for the same observations."""
    from contract import EpisodeInfo
    from foresight.planners import build_planner
    from planner.vam import VAMPlanner, synthetic_observations

    in_python, via_cli = VAMPlanner.from_checkpoint(demo / "planner" / "vam"), build_planner("vam", {"checkpoint": str(demo / "planner" / "vam")})
    assert in_python.config == via_cli.config and via_cli.config.inference.aggregate == "cautious"
    for planner in (in_python, via_cli):
        planner.reset(EpisodeInfo("same"))
    for observation in synthetic_observations(4, height=32, width=64, period_s=in_python.config.frame_period_s):
        np.testing.assert_array_equal(in_python.plan(observation).waypoints, via_cli.plan(observation).waypoints)


def test_readme_planner_snippet_runs_on_the_demo_output(demo, tmp_path, monkeypatch):
    code = next(b for b in re.findall(r"```python\n(.*?)```", README, flags=re.S) if "runs/demo" in b)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "demo").symlink_to(demo)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["plan"].waypoints.shape[0] == scope["planner"].num_waypoints


def outputs_text(nb: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def images(nb: nbformat.NotebookNode) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


@pytest.mark.parametrize("profile", ["smoke", "tiny", "gpu"])
def test_every_stage_of_every_profile_is_a_valid_command(profile, tmp_path):
    """Each stage's overrides compose against its command's config (no typo waits for minute 40)."""
    from omegaconf import OmegaConf

    from configs import compose
    from foresight.commands import COMMANDS

    cfg = compose("demo", [f"out={tmp_path}", f"profile={profile}"])
    stages = build_stages(OmegaConf.to_container(cfg.profile, resolve=True), DemoPaths(tmp_path), cfg.precision)
    assert len({s.name for s in stages}) == len(stages)
    for stage in stages:
        sub = COMMANDS[stage.words[0]][stage.words[1]]
        compose(sub.config, list(stage.overrides))


def test_demo_precision_reaches_every_training_stage(tmp_path):
    """`foresight demo precision=32-true`: what a CPU without native bf16 runs, on any machine."""
    from omegaconf import OmegaConf

    from configs import compose
    from foresight.commands import COMMANDS

    cfg = compose("demo", [f"out={tmp_path}", "precision=32-true"])
    trained = [s for s in build_stages(OmegaConf.to_container(cfg.profile, resolve=True), DemoPaths(tmp_path), cfg.precision) if s.words[0] == "train"]
    assert [s.name for s in trained] == ["train_tokenizer", "train_world_model", "train_planner"]
    for stage in trained:
        assert compose(COMMANDS["train"][stage.words[1]].config, list(stage.overrides)).trainer.precision == "32-true"


@pytest.mark.parametrize("precision, native_bf16, expected", [("auto", True, "bf16"), ("auto", False, "fp32"), ("bf16-mixed", True, "bf16"),
                                                             ("bf16-mixed", False, "fp32"), ("32-true", True, "fp32")])
def test_the_learned_planner_is_evaluated_at_its_training_precision(tmp_path, monkeypatch, precision, native_bf16, expected):
    """The planner's closed-loop and ablation stages run it as it trained where this CPU runs that
    natively (bf16: ~1.4x faster closed loop on 2 cores); an AVX2-only CPU or an fp32 demo: fp32. The
    GPU profile's own vam.precision is kept."""
    from omegaconf import OmegaConf

    from configs import compose

    monkeypatch.setattr("foresight.training.precision.cpu_has_native_bf16", lambda: native_bf16)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    cfg = compose("demo", [f"out={tmp_path}", f"precision={precision}"])
    stages = build_stages(OmegaConf.to_container(cfg.profile, resolve=True), DemoPaths(tmp_path), cfg.precision)
    vam = [s for s in stages if s.name.startswith("closed_loop_vam") or s.name == "ablation"]
    assert len(vam) == 5
    for stage in vam:
        assert [o for o in stage.overrides if o.startswith("vam.precision=")] == [f"vam.precision={expected}"]
    assert not any(o.startswith("vam.") for s in stages if s not in vam for o in s.overrides)
    gpu = compose("demo", [f"out={tmp_path}", "profile=gpu", f"precision={precision}"])
    for stage in build_stages(OmegaConf.to_container(gpu.profile, resolve=True), DemoPaths(tmp_path), gpu.precision):
        if stage.name.startswith("closed_loop_vam"):
            assert [o for o in stage.overrides if o.startswith("vam.precision=")] == ["vam.precision=bf16"]


def test_closed_loop_episodes_per_suite():
    """The tiny profile runs 30 nominal episodes per planner (10-episode draws spread by ~0.1) and
    10 of each NCAP suite; the count is on each stage's command line."""
    from omegaconf import OmegaConf

    from configs import compose
    from foresight.demo import suite_episodes

    assert suite_episodes({"episodes": 10, "suite_episodes": {"nominal": 30}}, "nominal") == 30
    assert suite_episodes({"episodes": 10, "suite_episodes": {"nominal": 30}}, "ncap_side") == 10
    assert suite_episodes({"episodes": 4}, "nominal") == 4
    cfg = compose("demo", ["out=x", "profile=tiny"])
    stages = {s.name: s for s in build_stages(OmegaConf.to_container(cfg.profile, resolve=True), DemoPaths(Path("x")), cfg.precision)}
    assert "episodes=30" in stages["closed_loop_vam_nominal"].overrides
    assert "episodes=30" in stages["closed_loop_constant_velocity_nominal"].overrides
    assert "episodes=10" in stages["closed_loop_vam_ncap_stationary"].overrides


def test_paired_gain_over_shared_episodes_and_the_noise_note(tmp_path):
    from foresight.report import _verdict_lines, paired_gain

    def write(name: str, rows: list[tuple[str, str]]) -> Path:
        path = tmp_path / name
        path.write_text("episode_id,score,ncap_score\n" + "".join(f"{e},{s},\n" for e, s in rows))
        return path

    ours = write("ours.csv", [("a", "0.9"), ("b", "0.0"), ("c", "1.0"), ("only_ours", "1.0")])
    base = write("base.csv", [("a", "0.5"), ("b", "0.5"), ("c", "0.0")])
    paired = paired_gain(ours, base, "score")
    diffs = np.array([0.4, -0.5, 1.0])  # the unpaired episode is left out
    assert paired["episodes"] == 3
    assert paired["gain"] == pytest.approx(diffs.mean())
    assert paired["stderr"] == pytest.approx(diffs.std(ddof=1) / np.sqrt(3))
    assert paired_gain(ours, tmp_path / "missing.csv", "score") is None
    assert paired_gain(ours, base, "ncap_score") is None  # empty column: nothing pairs up
    metrics = {"closed_loop": {
        "vam": {"nominal": {"score": 0.6, "ncap_score": None, "collision_rate": 0.1,
                            "paired_vs_constant_velocity": {"metric": "score", **paired}}},
        "constant_velocity": {"nominal": {"score": 0.5, "ncap_score": None, "collision_rate": 0.1}},
    }}  # fmt: skip
    (line,) = _verdict_lines(metrics)
    assert "beats constant velocity" in line and "paired gain +0.30 +- 0.44 over 3 episodes" in line and "within noise" in line
    metrics["closed_loop"]["ego_mlp"] = {"nominal": {"score": 0.2, "ncap_score": None, "collision_rate": 0.3}}
    metrics["closed_loop"]["vam"]["nominal"]["paired_vs_ego_mlp"] = {"metric": "score", "gain": 0.4, "stderr": 0.1, "episodes": 3}
    lines = _verdict_lines(metrics)
    assert "ego-status MLP" in lines[1] and "0.60 vs 0.20, paired +0.40 +- 0.10" in lines[1] and "within noise" not in lines[1]


def test_dagger_rounds_profile_key_points_every_evaluation_at_the_last_round(tmp_path):
    from omegaconf import OmegaConf

    from configs import compose
    from foresight.report_figures import plot_dagger_rounds

    cfg = compose("demo", ["out=x", "profile=tiny"])
    profile = OmegaConf.to_container(cfg.profile, resolve=True)
    assert profile["planner"]["dagger_rounds"] == 2  # the tiny demo's planner is the second round's
    paths = DemoPaths.of(Path("x"), profile)
    stages = {s.name: s for s in build_stages(profile, paths, cfg.precision)}
    assert "dagger.rounds=2" in stages["train_planner"].overrides
    last = "checkpoint=" + str(Path("x") / "planner" / "dagger" / "round_02" / "train" / "vam")
    assert all(last in s.overrides for n, s in stages.items() if n in ("eval_open_loop", "ablation") or n.startswith("closed_loop_vam"))
    plain = build_stages(profile | {"planner": {"max_steps": 1500}}, DemoPaths.of(Path("x"), {}), cfg.precision)
    assert not any(a.startswith("dagger.") for s in plain for a in s.overrides)
    # The report plots the per-round validation score (rounds.json) and tabulates it.
    rounds = [{"round": 0, "validation_score": 0.6, "validation_score_stderr": 0.1}, {"round": 1, "validation_score": 0.7, "validation_score_stderr": 0.1}]
    assert plot_dagger_rounds(rounds, tmp_path / "r.png").is_file() and plot_dagger_rounds([{"round": 0}], tmp_path / "n.png") is None
    (tmp_path / "planner" / "dagger").mkdir(parents=True)
    (tmp_path / "planner" / "dagger" / "rounds.json").write_text(json.dumps(rounds))
    metrics = collect_metrics(DemoPaths.of(tmp_path, profile), profile, {})
    assert [r["validation_score"] for r in metrics["dagger_rounds"]] == [0.6, 0.7]
    assert "## DAgger rounds" in build_markdown(metrics, profile, [], ReportMedia(), tmp_path)
