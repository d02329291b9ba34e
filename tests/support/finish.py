"""The tuning seed's finish-line video (include/sample/make_finish.py --seed 1), which is not
committed: generated once (about a minute of CPU), checked against the committed truth, and kept
(gitignored) beside it for every later test and run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[2] / "include" / "sample"
FINISH = SAMPLE / "finish-s1.mp4"
TRUTH = SAMPLE / "finish-s1.truth.json"


def finish_s1_video() -> Path:
    if not FINISH.exists():
        out = SAMPLE / "generated"
        subprocess.run(
            [sys.executable, str(SAMPLE / "make_finish.py"), "--seed", "1", "--out-dir", str(out)], check=True
        )
        assert json.loads((out / TRUTH.name).read_text()) == json.loads(TRUTH.read_text())
        (out / FINISH.name).replace(FINISH)
        shutil.rmtree(out)
    return FINISH
