"""Open DIR/report.html in headless Chromium, save a screenshot, and check what a reader sees; prints
one JSON object.

    python benchmarks/report_screenshot.py runs/demo                 # writes runs/demo/report_screenshot.png
    python benchmarks/report_screenshot.py runs/demo --screenshot /tmp/report.png --window-size 1280x2400

Chromium (`apt-get install chromium`; /usr/bin/chromium, or --chromium PATH) runs offline
(--disable-background-networking, a throwaway profile). Two runs of it:
  1. --dump-dom of a copy of the page with a script that, once the page has loaded, writes onto
     <html> how many <img> the browser failed to decode (not complete, or naturalWidth 0) and the
     vertical positions of the summary figure and the first table. The dumped DOM is checked
     again without the browser (foresight/report_check.py: every src decodes to an image).
  2. --screenshot of the page itself, at --window-size.
JSON: ok, broken_images (the browser's count plus the sources that did not decode), images,
figure_before_table (in the DOM order and on screen: the figure's top above the table's),
figure_top_px, table_top_px, screenshot (its path). Exit status 0 when ok, 1 when not, 2 when
Chromium or the report is missing.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from foresight.report import SUMMARY_ID  # noqa: E402
from foresight.report_check import check_report_html  # noqa: E402

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
# Runs after the load event (every image decoded or failed); the results go onto <html> as data-* attributes.
PROBE = f"""<script>
window.addEventListener("load", function () {{
  var images = Array.from(document.images);
  var broken = images.filter(function (img) {{ return !img.complete || img.naturalWidth === 0; }});
  var figure = document.getElementById("{SUMMARY_ID}");
  var table = document.querySelector("table");
  var top = function (el) {{ return el ? String(el.getBoundingClientRect().top + window.scrollY) : ""; }};
  var root = document.documentElement;
  root.setAttribute("data-probe", "done");
  root.setAttribute("data-images", String(images.length));
  root.setAttribute("data-broken", String(broken.length));
  root.setAttribute("data-broken-src", broken.map(function (img) {{ return img.src.slice(0, 80); }}).join(" "));
  root.setAttribute("data-figure-top", top(figure));
  root.setAttribute("data-table-top", top(table));
}});
</script>"""


def find_chromium(explicit: str | None) -> str | None:
    for candidate in ([explicit] if explicit else CHROMIUM_CANDIDATES):
        found = shutil.which(candidate)
        if found:
            return found
    return None


def chromium(binary: str, profile: Path, *args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
             "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={profile}"]
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=timeout_s, check=False)


def _attribute(dom: str, name: str) -> str | None:
    match = re.search(rf'<html[^>]*\s{name}="([^"]*)"', dom)
    return match.group(1) if match else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="a `foresight demo` output directory (holding report.html)")
    parser.add_argument("--screenshot", type=Path, help="PNG to write (default: DIR/report_screenshot.png)")
    parser.add_argument("--window-size", default="1280x2000", help="WIDTHxHEIGHT in pixels of the screenshot")
    parser.add_argument("--chromium", help="the browser binary (default: /usr/bin/chromium, else chromium on PATH)")
    args = parser.parse_args(argv)
    report = args.dir.resolve() / "report.html"
    if not report.is_file():
        print(f"report_screenshot: error: no {report} (run `foresight demo out={args.dir}` first)", file=sys.stderr)
        return 2
    binary = find_chromium(args.chromium)
    if binary is None:
        print("report_screenshot: error: Chromium not found (tried " + ", ".join([args.chromium] if args.chromium else CHROMIUM_CANDIDATES)
              + "); install it with `apt-get install -y chromium` or pass --chromium PATH", file=sys.stderr)
        return 2
    if not re.fullmatch(r"\d+x\d+", args.window_size):
        print(f"report_screenshot: error: --window-size must be WIDTHxHEIGHT, got {args.window_size!r}", file=sys.stderr)
        return 2
    width, height = args.window_size.split("x")
    screenshot = (args.screenshot or args.dir / "report_screenshot.png").resolve()
    html = report.read_text()
    with tempfile.TemporaryDirectory(prefix="report_screenshot_") as tmp:
        tmp_dir = Path(tmp)
        # The copy resolves relative links against the demo directory (<base>), as the original does.
        probed = html.replace("<head>", f'<head><base href="{report.parent.as_uri()}/">', 1).replace("</body>", PROBE + "</body>", 1)
        page = tmp_dir / "report_probed.html"
        page.write_text(probed)
        dumped = chromium(binary, tmp_dir / "profile-dom", "--virtual-time-budget=10000", f"--window-size={width},{height}", "--dump-dom", page.as_uri())
        shot = chromium(binary, tmp_dir / "profile-shot", f"--window-size={width},{height}", f"--screenshot={screenshot}", report.as_uri())
    dom = dumped.stdout
    if _attribute(dom, "data-probe") != "done":
        print(f"report_screenshot: error: Chromium did not render the page (exit {dumped.returncode}): {dumped.stderr.strip()[-500:]}", file=sys.stderr)
        return 1
    static = check_report_html(dom, report.parent)
    browser_broken = int(_attribute(dom, "data-broken") or 0)
    figure_top, table_top = _attribute(dom, "data-figure-top"), _attribute(dom, "data-table-top")
    on_screen = bool(figure_top) and (not table_top or float(figure_top) < float(table_top))
    broken = sorted(set(static.broken_images) | set(filter(None, (_attribute(dom, "data-broken-src") or "").split(" "))))
    result = {
        "ok": bool(static.ok and browser_broken == 0 and on_screen and screenshot.is_file() and shot.returncode == 0),
        "images": int(_attribute(dom, "data-images") or 0),
        "broken_images": max(browser_broken, len(static.broken_images)),
        "broken_sources": broken,
        "figure_before_table": static.figure_before_table and on_screen,
        "figure_top_px": float(figure_top) if figure_top else None,
        "table_top_px": float(table_top) if table_top else None,
        "screenshot": str(screenshot) if screenshot.is_file() else None,
        "chromium": binary,
    }
    print(json.dumps(result, indent=1))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
