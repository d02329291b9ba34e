"""Embedding distance <-> a Rekognition-style similarity (0-100), so a threshold means the same
on both backends.

Rekognition's `FaceMatchThreshold` defaults to 80 and its `Similarity` is 0-100. dlib's ResNet
embeddings are compared by Euclidean distance, and dlib documents 0.6 as its same-person
threshold (99.38 % on LFW). The mapping is linear and anchored there: distance 0 -> 100,
0.6 -> 80, 3.0 -> 0 (clipped), i.e. `similarity = 100 - 100 * distance / 3`. Measured here
(bench/results/faces.md): the same person's photos stayed within ~0.43 (>= 85.7), different people
were >= 0.63 apart (<= 79). Light to import (no numpy).
"""

from __future__ import annotations

import math
import os

DISTANCE_AT_ZERO = 3.0  # distance mapped to similarity 0
DEFAULT_THRESHOLD = 83.0  # similarity: distance 0.51, between the same-person and different-people ranges


def similarity(distance: float) -> float:
    """Rekognition-style similarity (0-100) of two faces `distance` apart."""
    return round(max(0.0, min(100.0, 100.0 * (1.0 - distance / DISTANCE_AT_ZERO))), 3)


def distance_for(similarity_value: float) -> float:
    """The largest distance that still reaches `similarity_value`."""
    if not 0 <= similarity_value <= 100:
        raise ValueError(f"similarity must be 0-100, got {similarity_value}")
    return DISTANCE_AT_ZERO * (1.0 - similarity_value / 100.0)


def l2_from_lucene_score(score: float) -> float:
    """Euclidean distance from a k-NN `l2` score (`1 / (1 + d^2)`, the lucene engine's)."""
    if score <= 0:
        return math.inf
    return math.sqrt(max(0.0, 1.0 / score - 1.0))


def match_threshold() -> float:
    """Default similarity a face must reach to match a photo (`REKO_FACE_MATCH_THRESHOLD`, 83)."""
    raw = os.environ.get("REKO_FACE_MATCH_THRESHOLD", "").strip()
    if not raw:
        return DEFAULT_THRESHOLD
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"REKO_FACE_MATCH_THRESHOLD={raw!r} is not a number") from None
    if not 0 <= value <= 100:
        raise ValueError(f"REKO_FACE_MATCH_THRESHOLD must be 0-100, got {raw!r}")
    return value
