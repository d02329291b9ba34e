"""A real text analyser that fails on chosen frames, plugged in via REKO_LOCAL_TEXT_ANALYSER.

Frames are chosen by the SHA-1 of their JPEG bytes (listed in the JSON file named by
REKO_TEST_FAIL_HASHES), so the same choice holds in dag.test() and in scheduler-run tasks.
Every call is appended to REKO_TEST_CALLS_LOG, so tests can count what was analysed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from reko.analysis.local_text import LocalTextAnalyser


class InjectedFault(RuntimeError):
    """The failure this analyser raises on purpose."""


class FaultyTextAnalyser(LocalTextAnalyser):
    def detect_text(self, image: bytes) -> dict:
        digest = hashlib.sha1(image).hexdigest()
        calls = os.environ.get("REKO_TEST_CALLS_LOG")
        if calls:
            with Path(calls).open("a") as log:
                log.write(digest + "\n")
        fail_file = os.environ.get("REKO_TEST_FAIL_HASHES")
        if fail_file and Path(fail_file).exists() and digest in json.loads(Path(fail_file).read_text()):
            raise InjectedFault(f"injected failure for frame {digest[:8]}")
        return super().detect_text(image)
