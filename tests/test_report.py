"""The demo report's pictures and page checks, on small real files (the whole report: tests/test_demo.py)."""

from __future__ import annotations

import base64
import subprocess
import sys

import cv2
import numpy as np
import pytest

from foresight.report import SUMMARY_ALT, SUMMARY_ID, ReportMedia, build_markdown, markdown_to_html, mean_stderr
from foresight.report_check import check_report_html
from foresight.report_figures import plot_closed_loop_summary, summary_bars, video_strip, world_model_rollout_grid
from sim_eval.render.video import write_video
from tests.conftest import REPO_ROOT

CLOSED_LOOP = {
    "vam": {"nominal": {"score": 0.55, "score_stderr": 0.08, "ncap_score": None, "ncap_score_stderr": None},
            "ncap_stationary": {"score": 0.59, "score_stderr": 0.16, "ncap_score": 4.19, "ncap_score_stderr": 0.35}},
    "constant_velocity": {"nominal": {"score": 0.50, "score_stderr": 0.09, "ncap_score": None},
                          "ncap_stationary": {"score": 0.0, "score_stderr": 0.0, "ncap_score": 0.0, "ncap_score_stderr": 0.0}},
    "expert": {"nominal": {"score": 0.96, "score_stderr": None, "ncap_score": None}},  # its NCAP run is missing
}  # fmt: skip


def test_summary_marks_scores_that_do_not_apply_as_na_not_zero(tmp_path):
    bars = {(b.metric, b.planner, b.suite): b for b in summary_bars(CLOSED_LOOP)}
    assert len(bars) == 2 * 3 * 2  # every metric x planner x suite
    assert bars["ncap_score", "vam", "nominal"].value is None  # does not apply
    assert bars["ncap_score", "expert", "ncap_stationary"].value is None and bars["score", "expert", "ncap_stationary"].value is None  # missing
    assert bars["ncap_score", "constant_velocity", "ncap_stationary"].value == 0.0  # a measured 0 stays 0
    assert bars["ncap_score", "vam", "ncap_stationary"].stderr == 0.35 and bars["score", "vam", "nominal"].stderr == 0.08
    png = plot_closed_loop_summary(CLOSED_LOOP, tmp_path / "summary.png")
    assert cv2.imread(str(png)).shape[1] > 1000
    assert plot_closed_loop_summary({}, tmp_path / "none.png") is None


def test_standard_error_of_the_mean():
    assert mean_stderr([1.0, 0.0, None, 1.0, 0.0]) == pytest.approx(np.std([1, 0, 1, 0], ddof=1) / 2)
    assert mean_stderr([0.7]) is None and mean_stderr([None, None]) is None


def _video(path, frames: int = 20, hw: tuple[int, int] = (36, 64), fps: float = 10.0):
    rng = np.random.default_rng(0)
    return write_video([rng.integers(0, 255, (*hw, 3), dtype=np.uint8) for _ in range(frames)], path, fps=fps)


def test_video_strip_is_a_few_labelled_frames_side_by_side(tmp_path):
    strip = cv2.imread(str(video_strip(_video(tmp_path / "episode.mp4"), tmp_path / "strip.png")))
    assert strip.shape == (36 + 16, 4 * 64 + 3 * 4, 3)  # 4 frames under their time labels, 4-pixel gaps
    wide = cv2.imread(str(video_strip(_video(tmp_path / "wide.mp4", hw=(36, 700)), tmp_path / "wide.png")))
    assert wide.shape[1] == 2 * 700 + 4  # wide frames: fewer of them, under max_width_px


def test_rollout_grid_from_world_model_videos(tmp_path):
    from world_model.evaluate import _frame_strip

    rng = np.random.default_rng(1)
    videos = []
    for w in range(2):
        frames = [_frame_strip([rng.integers(0, 255, (32, 64, 3), dtype=np.uint8)] * 2, (40, 180, 40) if j < 3 else (200, 40, 40)) for j in range(5)]
        videos.append(write_video(frames, tmp_path / f"synth_window{w:02d}.mp4", fps=4.0))
    grid = world_model_rollout_grid(videos, tmp_path / "grid.png")
    assert cv2.imread(str(grid)).shape[1] > 5 * 200
    assert world_model_rollout_grid([], tmp_path / "none.png") is None


def _png_data_uri() -> str:
    ok, png = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))
    return "data:image/png;base64," + base64.b64encode(png.tobytes()).decode()


def test_page_check_finds_broken_images_and_a_table_above_the_figure(tmp_path):
    cv2.imwrite(str(tmp_path / "file.png"), np.zeros((4, 4, 3), np.uint8))
    good = _png_data_uri()
    page = f'<p><img id="{SUMMARY_ID}" src="{good}"></p><img src="file.png"><table></table>'
    assert check_report_html(page, tmp_path).ok
    check = check_report_html(f'<table></table><img id="{SUMMARY_ID}" src="{good}">', tmp_path)
    assert check.broken_images == () and not check.figure_before_table and not check.ok
    assert not check_report_html(f'<img src="{good}"><table></table>', tmp_path).figure_before_table  # no summary figure at all
    broken = ["missing.png", "data:image/png;base64,bm90IGEgcG5n", "data:image/png;base64,!!", "https://example.com/x.png", "data:text/plain;base64,aGk="]
    check = check_report_html(f'<img id="{SUMMARY_ID}" src="{good}">' + "".join(f'<img src="{s}">' for s in broken) + "<table></table>", tmp_path)
    assert check.figure_before_table and len(check.broken_images) == len(broken) and not check.ok


def test_report_page_opens_with_the_summary_figure(tmp_path):
    """The HTML of a report built from a summary figure and one table: the figure is found (by its
    id) and comes first; a missing picture is reported broken."""
    (tmp_path / "figures").mkdir()
    summary = plot_closed_loop_summary(CLOSED_LOOP, tmp_path / "figures" / "summary.png")
    metrics = {"stage_seconds": {"a": 1.0}, "closed_loop": {p: {s: {**m, "collision_rate": 0.0, "num_episodes": 3, "submetrics": {}}
                                                                   for s, m in suites.items()} for p, suites in CLOSED_LOOP.items()}}
    md = build_markdown(metrics, {"name": "t"}, ["foresight x"], ReportMedia(summary=summary), tmp_path)
    assert md.index(f"![{SUMMARY_ALT}]") < md.index("|")
    html = markdown_to_html(md, tmp_path)
    assert check_report_html(html, tmp_path).ok
    summary.unlink()  # a figure that is not there stays a link to a missing file: broken
    assert check_report_html(markdown_to_html(md, tmp_path), tmp_path).broken_images == ("figures/summary.png",)


def test_screenshot_script_says_when_chromium_is_missing(tmp_path):
    (tmp_path / "report.html").write_text("<html><head></head><body></body></html>")
    run = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "report_screenshot.py"), str(tmp_path), "--chromium", str(tmp_path / "no-chromium")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "Chromium not found" in run.stderr and "apt-get install -y chromium" in run.stderr
    run = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "report_screenshot.py"), str(tmp_path / "nothing")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "no " in run.stderr and "report.html" in run.stderr


def test_ncap_average_over_the_three_suites_with_paired_gain():
    from foresight.report import ncap_average, verdict

    def suite(score, err, gain=None):
        m = {"score": 0.5, "ncap_score": score, "ncap_score_stderr": err}
        if gain is not None:
            m["paired_vs_constant_velocity"] = {"metric": "ncap_score", "gain": gain, "stderr": 0.3, "episodes": 10}
        return m

    closed = {
        "vam": {"nominal": {"score": 0.6, "ncap_score": None},
                "ncap_stationary": suite(4.0, 0.3, 2.0), "ncap_frontal": suite(2.0, 0.4, 1.0), "ncap_side": suite(3.0, 0.0, 0.0)},
        "constant_velocity": {"ncap_stationary": suite(2.0, 0.3), "ncap_frontal": suite(1.0, 0.4), "ncap_side": suite(3.0, 0.0)},
        "expert": {"ncap_stationary": suite(5.0, 0.0), "ncap_frontal": suite(5.0, 0.0)},  # ncap_side missing: no average
    }  # fmt: skip
    avg = ncap_average(closed)
    assert set(avg) == {"vam", "constant_velocity"}
    assert abs(avg["vam"]["ncap_score"] - 3.0) < 1e-12 and abs(avg["vam"]["ncap_score_stderr"] - 0.5 / 3) < 1e-12
    assert abs(avg["vam"]["paired_vs_constant_velocity"]["gain"] - 1.0) < 1e-12
    assert abs(avg["vam"]["paired_vs_constant_velocity"]["stderr"] - (3 * 0.09) ** 0.5 / 3) < 1e-12
    assert "paired_vs_constant_velocity" not in avg["constant_velocity"]
    won = verdict({"closed_loop": closed, "ncap_average": avg})
    assert won["vam_beats_constant_velocity_ncap_average"] is True  # +1.0 +- 0.17: resolved
    assert won["vam_beats_constant_velocity_closed_loop_ncap_stationary"] is True  # paired +2.0 +- 0.3
    assert won["vam_beats_constant_velocity_closed_loop_ncap_side"] is False  # a tie is no win
    closed["vam"]["nominal"]["paired_vs_constant_velocity"] = {"metric": "score", "gain": 0.05, "stderr": 0.10, "episodes": 30}
    closed["constant_velocity"]["nominal"] = {"score": 0.5, "ncap_score": None}
    within_noise = verdict({"closed_loop": closed, "world_model": {"gain_vs_copy_last_t1": 0.3, "gain_vs_copy_last_t1_stderr": 0.2}})
    assert within_noise["vam_beats_constant_velocity_closed_loop_nominal"] is False  # ahead on the mean, within 2 standard errors
    assert within_noise["world_model_beats_copy_last_t1"] is False
