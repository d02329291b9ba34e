"""Short synthetic videos for tests: the makers live in `reko.localdev.short_videos` (the benchmarks
use them too); broken ones, for the rejection tests, are made here.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from reko.localdev.short_videos import FONT, make_video, set_mtime

__all__ = [
    "FONT",
    "copy_under",
    "cut_of",
    "empty_file",
    "make_video",
    "not_a_video",
    "set_mtime",
    "truncated_copy",
]


def cut_of(source: Path, target: Path, start_s: float, seconds: float) -> Path:
    """`seconds` of `source` from `start_s`, re-encoded so that it starts on a key frame."""
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-ss", str(start_s), "-i", str(source), "-t", str(seconds)]
        + ["-an", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(target)],
        check=True,
    )
    return target


def copy_under(source: Path, root: Path, name: str) -> Path:
    """A copy at `root/name/` under its own URI, so that no other test shares its frames and results;
    same bytes and mtime, so the same source fingerprint."""
    target = root / name / source.name
    target.parent.mkdir(parents=True)
    return Path(shutil.copy2(source, target))


def truncated_copy(source: Path, target: Path, fraction: float = 0.6) -> Path:
    """The first `fraction` of a (faststart) video: its index is intact, its end is missing."""
    target.parent.mkdir(parents=True, exist_ok=True)
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


def not_a_video(target: Path) -> Path:
    """A text file with a video's extension."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("this is a shopping list, not a video\n" * 20)
    return target


def empty_file(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"")
    return target
