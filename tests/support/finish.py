"""The tuning seed's finish-line video (include/sample/make_finish.py --seed 1), which is not
committed: generated once (about a minute of CPU), checked against the committed truth, and kept
(gitignored) beside it for every later test and run.

On a fresh clone the suite starts the generation in the background when it collects a test that
needs the video (`start_in_background`, from tests/conftest.py), so the minute is spent while the
modules before it wait on Airflow, not in the first test that asks for the video."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[2] / "include" / "sample"
FINISH = SAMPLE / "finish-s1.mp4"
TRUTH = SAMPLE / "finish-s1.truth.json"
GENERATED = SAMPLE / "generated"
_COMMAND = [sys.executable, str(SAMPLE / "make_finish.py"), "--seed", "1", "--out-dir", str(GENERATED)]
_background: subprocess.Popen | None = None


def start_in_background() -> None:
    """Start generating the video (at a lower CPU priority) unless it exists or is on its way."""
    global _background
    if FINISH.exists() or _background is not None:
        return
    log = open(SAMPLE / "generated.log", "wb")  # noqa: SIM115 - the child writes it until it ends
    _background = subprocess.Popen(
        _COMMAND, stdout=log, stderr=subprocess.STDOUT, preexec_fn=lambda: os.nice(10)
    )
    log.close()


def finish_s1_video() -> Path:
    """The video, generated first (or waited for, if it is on its way) when it is not there yet."""
    global _background
    if not FINISH.exists():
        start_in_background()
        code, _background = _background.wait(), None
        log = SAMPLE / "generated.log"
        assert code == 0, f"make_finish.py --seed 1 failed ({code}): {log.read_text()[-2000:]}"
        log.unlink()
        assert json.loads((GENERATED / TRUTH.name).read_text()) == json.loads(TRUTH.read_text())
        (GENERATED / FINISH.name).replace(FINISH)
        shutil.rmtree(GENERATED)
    return FINISH


def stop_background() -> None:
    """End a generation no test waited for (a session cut short, or run with -k)."""
    global _background
    if _background is not None:
        _background.terminate()
        _background.wait()
        _background = None
        shutil.rmtree(GENERATED, ignore_errors=True)
