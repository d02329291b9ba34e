"""Synthetic detection documents, shaped exactly as the pipeline indexes them (tests and bench/)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from reko.index.docs import detection_docs


def detection_actions(index: str, video_id: str, frames: int, words: int = 5) -> Iterator[dict[str, Any]]:
    """Actions for documents shaped exactly as the pipeline indexes them."""
    for frame in range(frames):
        response = {
            "TextDetections": [
                {
                    "DetectedText": str(1000 + (frame * 7 + w) % 9000),
                    "Type": "WORD",
                    "Id": w,
                    "ParentId": 0,
                    "Confidence": 90.0 + w,
                    "Geometry": {"BoundingBox": {"Left": 0.1 * w, "Top": 0.2, "Width": 0.05, "Height": 0.04}},
                }
                for w in range(words)
            ]
        }
        for doc_id, doc in detection_docs(
            video_id=video_id,
            frame_index=frame,
            timestamp_ms=frame * 500,
            frame_uri=f"s3://bucket/work/{video_id}/frames/frame.{frame:07d}.jpg",
            kind="text",
            response=response,
            backend="aws",
            model="rekognition-detect-text",
            min_confidence=50,
        ):
            yield {"_index": index, "_id": doc_id, "_source": doc}
