"""Local face analysis: dlib's HOG detector, its 5-point landmarks and its 128-d ResNet embedding.

Models ship inside packages and are loaded from their paths (nothing is downloaded): the `dlib-bin`
wheel (Boost Software License) runs them, the `face_recognition_models` sdist (CC0 1.0) holds the
weights. The 68-point landmark model in that package is trained on iBUG 300-W, whose licence
excludes commercial use: it is never loaded; the 5-point model (dlib's own data) is all the
aligner needs.

`detect_faces` returns the shape of Rekognition's `DetectFaces` response (`FaceDetails[]` with a
normalised `BoundingBox`, `Confidence` 0-100 and `Landmarks`), plus `Embeddings` (one 128-d
vector per face, same order) and `FaceModelVersion`. Measured on this machine (bench/results/
faces.md): decoding and HOG detection ~0.05 CPU-s per 720p frame (detection runs on the grey
image: ~25 % cheaper than on RGB), then the embedding per face.

The embedding: the `dlib-bin` wheel is built without BLAS (`dlib.DLIB_USE_BLAS` is False), so
dlib's own ResNet forward pass costs ~0.054 CPU-s per face, batched or not. `REKO_FACE_EMBEDDER`
picks who runs that same network with the same weights on dlib's aligned 150 px chips:
`numpy` (the default; `reko.faces.resnet`, im2col + GEMM on numpy's OpenBLAS, one thread, a few
times cheaper) or `dlib` (the reference). Their vectors agree to float32 rounding (tests/
test_faces.py gates it at 1e-3 per component on real photos); they are not bit-identical, so the
model version names the embedder (it is part of the analysis cache key) and a cached dlib result
is not reused as a numpy one.

Confidence: HOG gives an SVM margin, not a probability; it is mapped through a logistic
(`100 / (1 + exp(-3 * score))`: margin 0 -> 50, 0.5 -> 82, 1 -> 95). Faces smaller than ~80 px
are not found at the default upsampling (0); `REKO_FACE_UPSAMPLE=1` finds ~40 px faces at ~4x the
detection cost. Nothing about a face is logged.
"""

from __future__ import annotations

import importlib.util
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FaceNotFoundError", "LocalFaceAnalyser", "PhotoFace", "embed_photo", "faces_analysis"]

MODEL_PACKAGE = "face_recognition_models"
_SHAPE_MODEL = "shape_predictor_5_face_landmarks.dat"
_EMBED_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
CHIP_SIZE = 150  # the ResNet's input side (px)
CHIP_PADDING = 0.25  # face_recognition's alignment padding
EMBEDDING_DIM = 128
PHOTO_MAX_SIDE = 1600  # query photos are shrunk to this first (detection cost grows with pixels)
_LOGISTIC_SLOPE = 3.0


class FaceNotFoundError(ValueError):
    """The photo decodes but holds no face the detector can find."""


def model_dir() -> Path:
    """The weights' folder inside the installed `face_recognition_models` package (not imported:
    its `__init__` needs `pkg_resources`, which new setuptools lack)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"the {MODEL_PACKAGE} package is not installed: its weights are the local face models"
            " (pip install -r requirements.txt)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    for name in (_SHAPE_MODEL, _EMBED_MODEL):
        if not (folder / name).is_file():
            raise RuntimeError(f"face model {name} is missing from {folder}")
    return folder


EMBEDDERS = ("numpy", "dlib")


def embedder() -> str:
    """Who runs the ResNet (`REKO_FACE_EMBEDDER`: `numpy`, the default, or `dlib`)."""
    raw = os.environ.get("REKO_FACE_EMBEDDER", "").strip().lower() or EMBEDDERS[0]
    if raw not in EMBEDDERS:
        raise ValueError(f"REKO_FACE_EMBEDDER={raw!r} must be one of {', '.join(EMBEDDERS)}")
    return raw


def upsample() -> int:
    """Times the detector doubles the frame first (`REKO_FACE_UPSAMPLE`, default 0, at most 2)."""
    raw = os.environ.get("REKO_FACE_UPSAMPLE", "").strip() or "0"
    if raw not in ("0", "1", "2"):
        raise ValueError(f"REKO_FACE_UPSAMPLE={raw!r} must be 0, 1 or 2")
    return int(raw)


class _Models:
    """The models, loaded once per process and embedder. dlib's are not documented thread-safe
    (and the numpy embedder sets numpy's BLAS thread count while it runs): callers hold `lock`."""

    def __init__(self, embedder: str) -> None:
        import dlib

        folder = model_dir()
        self.dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.shapes = dlib.shape_predictor(str(folder / _SHAPE_MODEL))
        self.lock = threading.Lock()
        self.version = f"dlib-{dlib.__version__}/hog+shape5+resnet_v1"
        if embedder == "dlib":
            net = dlib.face_recognition_model_v1(str(folder / _EMBED_MODEL))
            self.embed = lambda chips: [list(v) for v in net.compute_face_descriptor(chips)]
        else:
            import numpy as np

            from reko.faces import resnet

            model = resnet.load(folder / _EMBED_MODEL)

            def embed(chips: list[Any]) -> list[list[float]]:
                with resnet.blas_threads(1):
                    return model(np.stack(chips)).tolist()

            self.embed = embed
            self.version += "-numpy"  # same network and weights; float32 rounding differs


_MODELS: dict[str, _Models] = {}
_MODELS_LOCK = threading.Lock()


def _models(name: str | None = None) -> _Models:
    name = name or embedder()
    if name not in _MODELS:
        with _MODELS_LOCK:
            if name not in _MODELS:
                _MODELS[name] = _Models(name)
    return _MODELS[name]


def _confidence(score: float) -> float:
    return round(100.0 / (1.0 + math.exp(-_LOGISTIC_SLOPE * score)), 4)


def _faces(
    rgb: Any, times: int, with_embeddings: bool = True, embedder_name: str | None = None
) -> list[dict[str, Any]]:
    """Every face in an RGB array: box (px, clipped), score, 5 landmarks (px), embedding."""
    import numpy as np

    models = _models(embedder_name)
    grey = np.ascontiguousarray(rgb.mean(axis=2, dtype=np.float32).astype(np.uint8))
    height, width = grey.shape
    with models.lock:
        rects, scores, _ = models.detector.run(grey, times, 0.0)
        found = []
        for rect, score in zip(rects, scores, strict=True):
            shape = models.shapes(grey, rect)
            found.append({"rect": rect, "score": float(score), "shape": shape})
        if with_embeddings and found:
            chips = [
                models.dlib.get_face_chip(rgb, f["shape"], size=CHIP_SIZE, padding=CHIP_PADDING)
                for f in found
            ]
            vectors = models.embed(chips)
            for face, vector in zip(found, vectors, strict=True):
                face["embedding"] = [round(float(v), 6) for v in vector]
    out = []
    for face in found:
        rect = face["rect"]
        x0, y0 = max(0, rect.left()), max(0, rect.top())
        x1, y1 = min(width, rect.right() + 1), min(height, rect.bottom() + 1)
        if x1 <= x0 or y1 <= y0:
            continue
        points = [(p.x, p.y) for p in face["shape"].parts()]
        out.append({**face, "box": (x0, y0, x1, y1), "points": points})
    return out


def _landmarks(points: list[tuple[int, int]], width: int, height: int) -> list[dict[str, Any]]:
    """Rekognition-named landmarks from dlib's 5 points (two corners of each eye, the nose base).
    `eyeLeft` is the eye on the image's left."""

    def at(x: float, y: float, kind: str) -> dict[str, Any]:
        return {
            "Type": kind,
            "X": round(min(1.0, max(0.0, x / width)), 6),
            "Y": round(min(1.0, max(0.0, y / height)), 6),
        }

    eye_a = ((points[0][0] + points[1][0]) / 2, (points[0][1] + points[1][1]) / 2)
    eye_b = ((points[2][0] + points[3][0]) / 2, (points[2][1] + points[3][1]) / 2)
    left, right = sorted((eye_a, eye_b))
    return [at(*left, "eyeLeft"), at(*right, "eyeRight"), at(points[4][0], points[4][1], "nose")]


def _bounding_box(box: tuple[int, int, int, int], width: int, height: int) -> dict[str, float]:
    x0, y0, x1, y1 = box
    return {
        "Width": round((x1 - x0) / width, 6),
        "Height": round((y1 - y0) / height, 6),
        "Left": round(x0 / width, 6),
        "Top": round(y0 / height, 6),
    }


class LocalFaceAnalyser:
    """Finds faces in a frame and embeds each, answering in Rekognition's `DetectFaces` shape.

    Construction is cheap; models load once per process on the first call. Deterministic for the
    same input bytes.
    """

    kind = "faces"

    def __init__(self, times_upsampled: int | None = None, embedder_name: str | None = None) -> None:
        self.times_upsampled = upsample() if times_upsampled is None else int(times_upsampled)
        if self.times_upsampled not in (0, 1, 2):
            raise ValueError(f"times_upsampled must be 0, 1 or 2, got {times_upsampled!r}")
        self.embedder = embedder_name or embedder()
        if self.embedder not in EMBEDDERS:
            raise ValueError(f"embedder must be one of {', '.join(EMBEDDERS)}, got {embedder_name!r}")

    @property
    def model_version(self) -> str:
        suffix = f"@up{self.times_upsampled}" if self.times_upsampled else ""
        return _models(self.embedder).version + suffix

    def detect_faces(self, image: bytes) -> dict[str, Any]:
        from reko.analysis.local_text import _decode

        rgb = _decode(image)
        height, width = rgb.shape[:2]
        faces = _faces(rgb, self.times_upsampled, embedder_name=self.embedder)
        return {
            "FaceDetails": [
                {
                    "BoundingBox": _bounding_box(f["box"], width, height),
                    "Confidence": _confidence(f["score"]),
                    "Landmarks": _landmarks(f["points"], width, height),
                }
                for f in faces
            ],
            "Embeddings": [f["embedding"] for f in faces],
            "FaceModelVersion": self.model_version,
        }


def faces_analysis(kind: str = "faces", options: dict[str, Any] | None = None):
    """The registry's factory for ("local", "faces"); the confidence filter (`min_confidence`) is
    applied when indexing, so `options` are not needed here."""
    from reko.analysis.base import Analysis

    analyser = LocalFaceAnalyser()
    return Analysis(
        kind,
        "local",
        analyser.model_version,
        lambda frame: analyser.detect_faces(frame.read_bytes()),
    )


@dataclass(frozen=True)
class PhotoFace:
    """The face a query photo is searched by: its embedding, its box in the photo (ratios) and how
    many faces the photo held (the largest one is used)."""

    embedding: list[float]
    bbox: dict[str, float]
    faces_in_photo: int


def embed_photo(data: bytes, embedder_name: str | None = None) -> PhotoFace:
    """Embed the largest face of an uploaded photo, in memory (the photo is never written).
    `embedder_name` overrides `REKO_FACE_EMBEDDER`.

    Raises ValueError naming the problem: not a JPEG/PNG, unreadable, or no face found.
    """
    import numpy as np
    from PIL import Image

    from reko.analysis.local_text import _decode

    rgb = _decode(data)
    height, width = rgb.shape[:2]
    scale = min(1.0, PHOTO_MAX_SIDE / max(height, width))
    if scale < 1.0:
        small = Image.fromarray(rgb).resize(
            (round(width * scale), round(height * scale)), Image.Resampling.BILINEAR
        )
        rgb = np.asarray(small)
        height, width = rgb.shape[:2]
    faces = _faces(rgb, 0, embedder_name=embedder_name)
    if not faces:  # small faces: look again at twice the size
        faces = _faces(rgb, 1, embedder_name=embedder_name)
    if not faces:
        raise FaceNotFoundError(
            f"no face found in the photo ({width}x{height} px after scaling): use a photo in which"
            " one face is seen from the front, at least ~40 px tall"
        )
    largest = max(faces, key=lambda f: (f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]))
    return PhotoFace(largest["embedding"], _bounding_box(largest["box"], width, height), len(faces))
