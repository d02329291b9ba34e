"""The analyser seam: which implementation answers a (backend, analysis) pair.

Backends register factories here; the DAG only names a backend and analyses, so switching from
the local models to Rekognition is a Param, never a code change.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from reko.config import ANALYSES, BACKENDS, analyser_override


class FrameAnalysisError(Exception):
    """This frame cannot be analysed (bad image, over a limit); retrying will not help."""


class RetryableAnalysisError(Exception):
    """A transient failure (throttling, a 5xx); the frame may succeed when retried."""


@dataclass(frozen=True)
class Analysis:
    """One analysis bound to its implementation: `run(image_bytes)` returns a Rekognition-shaped dict."""

    kind: str
    backend: str
    model_version: str
    run: Callable[[bytes], dict]


def _load_object(path: str) -> object:
    module, _, attr = path.partition(":")
    if not module or not attr:
        raise ValueError(f"analyser path {path!r} must look like 'package.module:ClassName'")
    return getattr(importlib.import_module(module), attr)


def _local(kind: str) -> Analysis:
    override = analyser_override(kind)
    if override:
        analyser = _load_object(override)()
    elif kind == "text":
        from reko.analysis.local_text import LocalTextAnalyser

        analyser = LocalTextAnalyser()
    else:
        raise NotImplementedError(f"analysis {kind!r} has no local model yet; available locally: ['text']")
    method = {"text": "detect_text", "faces": "detect_faces", "labels": "detect_labels"}[kind]
    return Analysis(kind, "local", analyser.model_version, getattr(analyser, method))


def check_available(backend: str, analyses: list[str]) -> None:
    """Fail fast, before any work, when a run asks for something this build cannot do."""
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not one of {list(BACKENDS)}")
    unknown = [a for a in analyses if a not in ANALYSES]
    if unknown or not analyses:
        raise ValueError(f"analyses {analyses!r} must be a non-empty subset of {list(ANALYSES)}")
    if backend == "aws":
        raise NotImplementedError(
            "backend 'aws' (MediaConvert + Rekognition) is not in this build yet; use backend 'local'"
        )
    missing = [a for a in analyses if a != "text" and not analyser_override(a)]
    if missing:
        raise NotImplementedError(f"analyses {missing} have no local model yet; use ['text']")


def get_analysis(backend: str, kind: str) -> Analysis:
    check_available(backend, [kind])
    return _local(kind)
