"""Short synthetic videos made with ffmpeg: a number drawn on a plain background.

A few KB each and made in well under a second, so a test archive of dozens costs nothing; the
number is real text, so the OCR analyser finds it.
"""

from __future__ import annotations

import os
import subprocess
from datetime import datetime
from pathlib import Path

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


def make_video(
    path: Path, text: str, seconds: float = 3, faststart: bool = True, noise: bool = False
) -> Path:
    """An H.264 MP4 at 10 fps, 320x240, with `text` in large black letters on white.

    A small frame counter in the corner makes every frame's bytes differ (so none is skipped as
    identical to the previous one); `noise` makes the video big (about 350 KB a second).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    filters = ["noise=alls=40:allf=t+u"] if noise else []
    filters.append(
        f"drawtext=fontfile={FONT}:text='{text}':fontsize=96:fontcolor=black:x=(w-tw)/2:y=(h-th)/2"
    )
    filters.append(f"drawtext=fontfile={FONT}:text='%{{n}}':fontsize=14:fontcolor=gray:x=4:y=4")
    draw = ",".join(filters)
    cmd = ["ffmpeg", "-v", "error", "-y", "-nostdin", "-f", "lavfi"]
    cmd += ["-i", f"color=c=white:s=320x240:d={seconds}:r=10", "-vf", draw]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "20"]  # 2 s GOPs
    cmd += ["-movflags", "+faststart"] if faststart else []
    subprocess.run([*cmd, str(path)], check=True, capture_output=True)
    return path


def set_mtime(path: Path, when: datetime) -> Path:
    """Set the file's modification time (what the scan's data interval is matched against)."""
    os.utime(path, (when.timestamp(), when.timestamp()))
    return path
