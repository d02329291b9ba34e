"""Detection documents built from Rekognition-shaped responses, with deterministic ids.

The id is (video, frame, kind, ordinal) where ordinal counts the detections kept after the
confidence filter, so a re-run with the same inputs overwrites the same documents and a frame
that now has fewer detections leaves ids above its count to be deleted as stale.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import Any

_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Matching form of a text: NFKC, upper case, single spaces (bib '1042' == '1042 ')."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip().upper()


def detection_id(video_id: str, frame_index: int, kind: str, ordinal: int) -> str:
    return f"{video_id}:{frame_index:07d}:{kind}:{ordinal:03d}"


def _bbox(geometry: dict | None) -> dict[str, float] | None:
    box = (geometry or {}).get("BoundingBox")
    if not box:
        return None
    return {k.lower(): round(float(box[k]), 6) for k in ("Left", "Top", "Width", "Height")}


def _items(kind: str, response: dict) -> Iterator[dict[str, Any]]:
    """Flatten one response into value/confidence/box items, per Rekognition API shape."""
    if kind == "text":
        for det in response.get("TextDetections", []):
            yield {
                "value": det.get("DetectedText", ""),
                "confidence": float(det.get("Confidence", 0.0)),
                "bbox": _bbox(det.get("Geometry")),
                "text_type": det.get("Type"),
                "detection_id": det.get("Id"),
                "parent_id": det.get("ParentId"),
            }
    elif kind == "labels":
        for label in response.get("Labels", []):
            instances = label.get("Instances") or [{}]
            for inst in instances:
                yield {
                    "value": label.get("Name", ""),
                    "confidence": float(inst.get("Confidence", label.get("Confidence", 0.0))),
                    "bbox": _bbox(inst.get("BoundingBox") and {"BoundingBox": inst["BoundingBox"]}),
                }
    elif kind == "faces":
        for face in response.get("FaceDetails", []):
            yield {
                "value": face.get("FaceId", "face"),
                "confidence": float(face.get("Confidence", 0.0)),
                "bbox": _bbox({"BoundingBox": face.get("BoundingBox")}),
            }
    else:
        raise ValueError(f"unknown analysis kind {kind!r}")


def detection_docs(
    *,
    video_id: str,
    frame_index: int,
    timestamp_ms: int,
    frame_uri: str,
    kind: str,
    response: dict,
    backend: str,
    model: str,
    min_confidence: float,
) -> list[tuple[str, dict[str, Any]]]:
    """(id, document) for every detection at or above `min_confidence`, in response order."""
    docs = []
    for item in _items(kind, response):
        if item["confidence"] < min_confidence or not item["value"].strip():
            continue
        ordinal = len(docs)
        doc = {
            "video_id": video_id,
            "frame_index": frame_index,
            "timestamp_ms": timestamp_ms,
            "kind": kind,
            "ordinal": ordinal,
            "value": item["value"],
            "value_norm": normalise(item["value"]),
            "confidence": round(item["confidence"], 3),
            "frame_uri": frame_uri,
            "backend": backend,
            "model": model,
        }
        for key in ("bbox", "text_type", "detection_id", "parent_id"):
            if item.get(key) is not None:
                doc[key] = item[key]
        docs.append((detection_id(video_id, frame_index, kind, ordinal), doc))
    return docs
