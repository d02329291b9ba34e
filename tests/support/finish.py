"""The tuning seed's finish-line video (include/sample/make_finish.py --seed 1), which is not
committed: generated once (about a minute of CPU), checked against the committed truth, and kept
(gitignored) beside it for every later test and run.

On a fresh clone the suite starts the generation in the background when it collects a test that
needs the video (`start_in_background`, from tests/conftest.py), so the minute is spent while the
modules before it wait on Airflow, not in the first test that asks for the video. The generation
holds a file lock, so with several test processes (`pytest -n`) it runs once and the others wait
for it."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[2] / "include" / "sample"
FINISH = SAMPLE / "finish-s1.mp4"
TRUTH = SAMPLE / "finish-s1.truth.json"
GENERATED = SAMPLE / "generated"
LOCK = SAMPLE / "generated.lock"
_background: subprocess.Popen | None = None


@contextmanager
def generation_lock(block: bool = True) -> Iterator[bool]:
    """Hold the generation lock (True), or, with `block=False`, False when another process does."""
    with open(LOCK, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True


def generate_once() -> None:
    """Generate the video and check it against the committed truth, unless it is already there.

    Call with the generation lock held."""
    if FINISH.exists():
        return
    shutil.rmtree(GENERATED, ignore_errors=True)
    command = [sys.executable, str(SAMPLE / "make_finish.py"), "--seed", "1", "--out-dir", str(GENERATED)]
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert done.returncode == 0, f"make_finish.py --seed 1 failed ({done.returncode}): {done.stdout[-2000:]}"
    assert json.loads((GENERATED / TRUTH.name).read_text()) == json.loads(TRUTH.read_text())
    (GENERATED / FINISH.name).replace(FINISH)
    shutil.rmtree(GENERATED)


def start_in_background() -> None:
    """Start generating the video (at a lower CPU priority) unless it exists or is on its way."""
    global _background
    if FINISH.exists() or _background is not None:
        return
    _background = subprocess.Popen(
        [sys.executable, "-m", "tests.support.finish"],
        cwd=SAMPLE.parents[1],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: os.nice(10),
        start_new_session=True,  # its own process group, so stop_background ends make_finish.py too
    )


def finish_s1_video() -> Path:
    """The video, waited for if a generation is on its way, else generated here."""
    with generation_lock():
        generate_once()
    return FINISH


def stop_background() -> None:
    """End a generation no test waited for (a session cut short, or run with -k)."""
    global _background
    if _background is not None:
        if _background.poll() is None:
            os.killpg(_background.pid, signal.SIGTERM)
            _background.wait()
            with generation_lock(block=False) as mine:  # not while another process generates
                if mine:
                    shutil.rmtree(GENERATED, ignore_errors=True)
        _background = None


if __name__ == "__main__":  # the background generation: once, by whichever process gets the lock
    with generation_lock(block=False) as mine:
        if mine:
            generate_once()
