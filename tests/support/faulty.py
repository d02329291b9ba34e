"""A real text analyser that fails on chosen frames, plugged in via REKO_LOCAL_TEXT_ANALYSER.

Frames are chosen by the SHA-1 of their JPEG bytes (listed in the JSON file named by
REKO_TEST_FAIL_HASHES), so the same choice holds in dag.test() and in scheduler-run tasks.
Every call is appended to REKO_TEST_CALLS_LOG, so tests can count what was analysed.

Worker death: a frame listed in the JSON file REKO_TEST_KILL_HASHES makes the analyser SIGKILL
its own process (the Airflow task process) while analysing it, once: the kill first creates the
file REKO_TEST_KILL_MARKER (holding the pid it killed), and no frame kills again while that file
exists. REKO_TEST_MAX_PIXELS lowers the local analyser's image size limit (`max_pixels`), so a
test can send an oversize frame without making a 90-megapixel image.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
from pathlib import Path

from reko.analysis.local_text import LocalTextAnalyser


class InjectedFault(RuntimeError):
    """The failure this analyser raises on purpose."""


def _listed(env: str, digest: str) -> bool:
    path = os.environ.get(env)
    return bool(path) and Path(path).exists() and digest in json.loads(Path(path).read_text())


class FaultyTextAnalyser(LocalTextAnalyser):
    def __init__(self, languages: str = "eng+kor") -> None:
        limit = os.environ.get("REKO_TEST_MAX_PIXELS")
        if limit:
            super().__init__(languages, max_pixels=int(limit))
        else:
            super().__init__(languages)

    def detect_text(self, image: bytes) -> dict:
        digest = hashlib.sha1(image).hexdigest()
        calls = os.environ.get("REKO_TEST_CALLS_LOG")
        if calls:
            with Path(calls).open("a") as log:
                log.write(digest + "\n")
        if _listed("REKO_TEST_FAIL_HASHES", digest):
            raise InjectedFault(f"injected failure for frame {digest[:8]}")
        marker = os.environ.get("REKO_TEST_KILL_MARKER")
        if marker and _listed("REKO_TEST_KILL_HASHES", digest):
            try:
                with Path(marker).open("x") as mark:  # exclusive: only the first process kills itself
                    mark.write(str(os.getpid()))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return super().detect_text(image)
