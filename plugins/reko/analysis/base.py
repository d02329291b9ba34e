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

    from reko.stages import ClipStage, FrameStage


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


# The one registry of analysers: (backend, kind) -> a `module:function` path taking
# (kind, options) and returning an `Analysis`. Paths, not functions, so this module imports no
# backend (reko.aws.rekognition imports this module: naming it here breaks the import circle) and
# a DAG file that only checks Params never loads boto3 or a model.
_FACTORIES: dict[tuple[str, str], str] = {
    ("local", "text"): "reko.analysis.local_text:text_analysis",
    ("local", "faces"): "reko.faces.local:faces_analysis",
    ("aws", "text"): "reko.aws.rekognition:rekognition_analysis",
    ("aws", "faces"): "reko.aws.face_collection:faces_analysis",  # IndexFaces: detect + collect
    ("aws", "labels"): "reko.aws.rekognition:rekognition_analysis",
}
_METHODS = {"text": "detect_text", "faces": "detect_faces", "labels": "detect_labels"}
# Backends whose analysers a deployment may replace by kind (`REKO_LOCAL_<KIND>_ANALYSER`).
_OVERRIDABLE = frozenset({"local"})


def register(backend: str, kind: str, factory: str) -> None:
    """Add or replace the factory (`module:function`, called with kind and options) for a pair."""
    if backend not in BACKENDS or kind not in ANALYSES:
        raise ValueError(
            f"({backend!r}, {kind!r}) is not a backend in {list(BACKENDS)} and kind in {list(ANALYSES)}"
        )
    _FACTORIES[(backend, kind)] = factory


def registered(backend: str) -> list[str]:
    """The analysis kinds `backend` can run (an override counts)."""
    return [
        kind
        for kind in ANALYSES
        if (backend, kind) in _FACTORIES or (backend in _OVERRIDABLE and analyser_override(kind))
    ]


def _overridden(backend: str, kind: str) -> Analysis:
    """A deployment's own analyser class (`REKO_LOCAL_<KIND>_ANALYSER`): bytes in, response out."""
    analyser = _load_object(analyser_override(kind) or "")()
    method = getattr(analyser, _METHODS[kind])
    return Analysis(kind, backend, analyser.model_version, lambda frame: method(frame.read_bytes()))


def check_available(backend: str, analyses: list[str]) -> None:
    """Fail fast, before any work, when a run asks for something this build cannot do."""
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not one of {list(BACKENDS)}")
    unknown = [a for a in analyses if a not in ANALYSES]
    if unknown or not analyses:
        raise ValueError(f"analyses {analyses!r} must be a non-empty subset of {list(ANALYSES)}")
    available = registered(backend)
    missing = [a for a in analyses if a not in available]
    if missing:
        raise NotImplementedError(f"analyses {missing} have no {backend} model yet; use {available}")


def get_analysis(backend: str, kind: str, options: dict[str, Any] | None = None) -> Analysis:
    """The analysis for (backend, kind); `options` (e.g. `min_confidence`, `regions_of_interest`)
    shape the request where the backend supports them (Rekognition); local models ignore them."""
    check_available(backend, [kind])
    if backend in _OVERRIDABLE and analyser_override(kind):
        return _overridden(backend, kind)
    factory = _load_object(_FACTORIES[(backend, kind)])
    return factory(kind, options)  # type: ignore[operator]


@dataclass(frozen=True)
class BackendTraits:
    """What the pipeline must know about a backend besides its analysers, so no step outside
    this module asks which backend it is."""

    frames_in_process: bool  # frames and clips are cut by ffmpeg in the task process (else a job)
    needs_s3: bool  # the video and the work root must be in S3 (MediaConvert reads and writes there)
    billed_per_image: bool  # every analysis call is billed as one image (Rekognition)
    stages: str  # the module whose `Frames` and `Clips` cut media for this backend (reko.stages)
    # `module:function` answering a photo search (`reko.faces.search.find_person`'s arguments
    # and result): the local k-NN over embeddings, or Rekognition's collection
    photo_search: str
    # `module:function(face_ids, names)` removing faces from a store outside the index (a
    # Rekognition collection), or None when the faces index is the only copy
    face_store: str | None
    # `module:function` reading words in a crop of a frame with no detector (a BGR array in,
    # [(text, confidence, x0, x1)] out), for re-reading bibs a runner's track predicts; None
    # where the backend has no local recogniser (Rekognition reads whole images only)
    crop_reader: str | None = None
    # modules this backend's tasks import for their work (models, media, the cloud's SDK), which
    # the process that forks task processes imports once for all of them (`reko.preload`)
    task_modules: tuple[str, ...] = ()


_TRAITS = {
    "local": BackendTraits(
        frames_in_process=True,
        needs_s3=False,
        billed_per_image=False,
        stages="reko.stages.local",
        photo_search="reko.faces.search:search_embeddings",
        face_store=None,
        crop_reader="reko.analysis.local_text:read_crop",
        task_modules=(
            *("numpy", "cv2", "onnxruntime", "shapely", "pyclipper", "PIL.Image", "tesserocr"),
            *("reko.analysis.local_text", "reko.analysis.text_detector", "reko.stages.local"),
        ),
    ),
    "aws": BackendTraits(
        frames_in_process=False,
        needs_s3=True,
        billed_per_image=True,
        stages="reko.aws.stages",
        photo_search="reko.aws.face_collection:search_collection",
        face_store="reko.aws.face_collection:delete_faces",
        task_modules=(
            *("boto3", "airflow.providers.amazon.aws.hooks.s3"),
            *("reko.aws.rekognition", "reko.aws.stages", "reko.aws.mediaconvert"),
        ),
    ),
}


def traits(backend: str) -> BackendTraits:
    """The backend's traits, or a clear error for an unknown backend."""
    try:
        return _TRAITS[backend]
    except KeyError:
        raise ValueError(f"backend {backend!r} is not one of {list(BACKENDS)}") from None


def crop_reader(backend: str) -> Callable[[Any], list[tuple[str, float, float, float]]] | None:
    """The backend's detector-free crop reader (see `BackendTraits.crop_reader`), or None."""
    path = traits(backend).crop_reader
    return _load_object(path) if path else None  # type: ignore[return-value]


def frames_cut_in_process(backend: str) -> bool:
    """Whether `backend` cuts frames in the calling process (so one task can do a whole short run);
    the others run a job that a task waits for deferred (MediaConvert), so they take the mapped path."""
    return traits(backend).frames_in_process


def frame_stage(backend: str) -> FrameStage:
    """The step that cuts a run's frames on `backend` (ffmpeg here, or a MediaConvert job)."""
    return _load_object(f"{traits(backend).stages}:Frames")()  # type: ignore[operator]


def clip_stage(backend: str) -> ClipStage:
    """The step that cuts a planned clip on `backend`."""
    return _load_object(f"{traits(backend).stages}:Clips")()  # type: ignore[operator]


def photo_searcher(backend: str) -> Callable[..., dict[str, Any]]:
    """The photo search of `backend` (imported only when a photo is searched)."""
    return _load_object(traits(backend).photo_search)  # type: ignore[return-value]


def face_store_deleter(backend: str) -> Callable[..., dict[str, Any]] | None:
    """What removes `backend`'s faces from its own store when a video is deleted, if it has one."""
    path = traits(backend).face_store
    return _load_object(path) if path else None  # type: ignore[return-value]
