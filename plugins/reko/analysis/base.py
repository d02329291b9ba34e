"""The analyser seam: which implementation answers a (backend, analysis) pair.

Backends register factories here; the DAG only names a backend and analyses, so switching from
the local models to Rekognition is a Param, never a code change.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reko.config import ANALYSES, BACKENDS, analyser_override

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


class FrameAnalysisError(Exception):
    """This frame cannot be analysed (bad image, over a limit); retrying will not help."""


class RetryableAnalysisError(Exception):
    """A transient failure (throttling, a 5xx); the frame may succeed when retried."""


@dataclass(frozen=True)
class Analysis:
    """One analysis bound to its implementation: `run(frame)` returns a Rekognition-shaped dict.

    `run` takes the frame's storage path, not its bytes, so a backend that reads the image where it
    lies (Rekognition on an S3 object) never downloads it; local models read the bytes themselves.
    """

    kind: str
    backend: str
    model_version: str
    run: Callable[[ObjectStoragePath], dict]
    version_key: str | None = None  # response key naming the model version (Rekognition's TextModelVersion)
    concurrency: int = 1  # frames a batch may analyse at once (remote APIs wait on the network)

    def model_of(self, response: dict) -> str:
        """The model that produced `response`: the static name, plus the version the response names."""
        version = response.get(self.version_key) if self.version_key else None
        return f"{self.model_version}:{version}" if version else self.model_version


def _load_object(path: str) -> object:
    module, _, attr = path.partition(":")
    if not module or not attr:
        raise ValueError(f"analyser path {path!r} must look like 'package.module:ClassName'")
    return getattr(importlib.import_module(module), attr)


_METHODS = {"text": "detect_text", "faces": "detect_faces", "labels": "detect_labels"}


def _local(kind: str) -> Analysis:
    override = analyser_override(kind)
    if override:
        analyser = _load_object(override)()
    elif kind == "text":
        from reko.analysis.local_text import LocalTextAnalyser

        analyser = LocalTextAnalyser()
    else:
        raise NotImplementedError(f"analysis {kind!r} has no local model yet; available locally: ['text']")
    method = getattr(analyser, _METHODS[kind])
    return Analysis(kind, "local", analyser.model_version, lambda frame: method(frame.read_bytes()))


def check_available(backend: str, analyses: list[str]) -> None:
    """Fail fast, before any work, when a run asks for something this build cannot do."""
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not one of {list(BACKENDS)}")
    unknown = [a for a in analyses if a not in ANALYSES]
    if unknown or not analyses:
        raise ValueError(f"analyses {analyses!r} must be a non-empty subset of {list(ANALYSES)}")
    if backend == "aws":
        return  # Rekognition does text, faces and labels
    missing = [a for a in analyses if a != "text" and not analyser_override(a)]
    if missing:
        raise NotImplementedError(f"analyses {missing} have no local model yet; use ['text']")


def get_analysis(backend: str, kind: str, options: dict[str, Any] | None = None) -> Analysis:
    """The analysis for (backend, kind); `options` (e.g. `min_confidence`, `regions_of_interest`)
    shape the request where the backend supports them (Rekognition); local models ignore them."""
    check_available(backend, [kind])
    if backend == "aws":
        from reko.aws.rekognition import rekognition_analysis

        return rekognition_analysis(kind, options)
    return _local(kind)


# Backends whose frames are cut inside the task process (ffmpeg); the others run a job that a
# task waits for deferred (MediaConvert), so their runs always take the mapped path.
_FRAMES_IN_PROCESS = frozenset({"local"})


def frames_cut_in_process(backend: str) -> bool:
    """Whether `backend` cuts frames in the calling process (so one task can do a whole short run)."""
    return backend in _FRAMES_IN_PROCESS
