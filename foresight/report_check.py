"""What a reader of DIR/report.html must see: every image loads, and the summary figure comes before
the first table. A pure-HTML check of the page (or of the DOM a browser rendered from it);
benchmarks/report_screenshot.py adds the browser's own view."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import cv2
import numpy as np

from foresight.report import SUMMARY_ID


@dataclass(frozen=True)
class ReportPageCheck:
    """images: <img> elements in the page; broken_images: the src (cut to 80 characters) of each
    one that does not decode to a picture: a data URI that is not an image, a missing or unreadable
    file, a remote URL (the page must open offline); figure_before_table: the summary figure
    (id=SUMMARY_ID) is in the page and before its first <table> (or the page has no table)."""

    images: int
    broken_images: tuple[str, ...]
    figure_before_table: bool

    @property
    def ok(self) -> bool:
        return self.images > 0 and not self.broken_images and self.figure_before_table


class _Elements(HTMLParser):
    """Collects <img> (id, src) and the position of the first <table>, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("img", "table"):
            self.order.append((tag, {k: v or "" for k, v in attrs}))


def _decodes(data: bytes) -> bool:
    return bool(data) and cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) is not None


def image_source_ok(src: str, root: Path) -> bool:
    """Whether an <img src> gives a picture: an image/* data URI whose base64 decodes to an image,
    or a file under `root` (relative path or file:// URL) that decodes to one."""
    if src.startswith("data:"):
        header, _, payload = src.partition(",")
        if not header.startswith("data:image/") or ";base64" not in header:
            return False
        try:
            return _decodes(base64.b64decode(payload, validate=True))
        except (binascii.Error, ValueError):
            return False
    url = urlparse(src)
    if url.scheme not in ("", "file"):
        return False  # remote: not there offline
    path = Path(unquote(url.path)) if url.scheme == "file" else root / unquote(url.path)
    return path.is_file() and _decodes(path.read_bytes())


def check_report_html(html: str, root: Path) -> ReportPageCheck:
    """Check the page `html` whose relative links resolve under `root` (the demo directory)."""
    parser = _Elements()
    parser.feed(html)
    parser.close()
    images = [attrs for tag, attrs in parser.order if tag == "img"]
    broken = tuple(a.get("src", "")[:80] for a in images if not image_source_ok(a.get("src", ""), root))
    kinds = [(tag, attrs.get("id")) for tag, attrs in parser.order]
    figure = kinds.index(("img", SUMMARY_ID)) if ("img", SUMMARY_ID) in kinds else None
    table = next((i for i, (tag, _) in enumerate(kinds) if tag == "table"), None)
    return ReportPageCheck(len(images), broken, figure is not None and (table is None or figure < table))
