"""The analysis settings' Params, declared once for every DAG that takes them.

`video_analysis` runs with them; `video_archive_scan` passes them on to the runs it starts.
Light to import (DAG files read it at parse time).
"""

from __future__ import annotations

from airflow.sdk import Param

from reko.config import ANALYSES, BACKENDS, default_backend, roster_uri
from reko.faces.similarity import DEFAULT_THRESHOLD


def analysis_settings_params(note: str = "") -> dict[str, Param]:
    """backend, frame_interval_s, analyses and min_confidence; `note` prefixes each description."""
    return {
        "backend": Param(
            default_backend(),
            type="string",
            enum=list(BACKENDS),
            title="Backend",
            description=f"{note}local: ffmpeg and packaged models; aws: MediaConvert and Rekognition.",
        ),
        "frame_interval_s": Param(
            1.0,
            type="number",
            minimum=0.04,
            maximum=3600,
            title="Frame interval (s)",
            description=f"{note}Seconds between captured frames (MediaConvert frame-capture rate).",
        ),
        "analyses": Param(
            ["text"],
            type="array",
            items={"type": "string", "enum": list(ANALYSES)},
            uniqueItems=True,
            minItems=1,
            title="Analyses",
            description=(
                f"{note}What to detect in each frame: text (bib numbers, captions), faces, labels."
                " Faces are biometric data: add them only when this run may store face boxes and"
                " embeddings (never on by default)."
            ),
        ),
        "min_confidence": Param(
            50.0,
            type="number",
            minimum=0,
            maximum=100,
            title="Minimum confidence (%)",
            description=f"{note}Detections below this confidence are not indexed (results keep them).",
        ),
    }


def runner_params() -> dict[str, Param]:
    """How runner passes are found: the race roster and how long a track may go unseen."""
    return {
        "roster_uri": Param(
            roster_uri(),
            type="string",
            title="Race roster",
            description=(
                "Optional CSV of bib numbers (header bib[,name,category]) as file:// or s3://. With it,"
                " reads snap to the roster and numbers not on it never become runner passes."
            ),
        ),
        "track_gap_s": Param(
            3.0,
            type="number",
            minimum=0,
            maximum=60,
            title="Track gap (s)",
            description=(
                "How long a runner's bib may be hidden or unreadable (another runner in front, blur)"
                " while its track goes on, when its motion stays consistent."
            ),
        ),
    }


def video_wait_param(default_s: int = 3600) -> Param:
    """How long `probe` waits (deferred) for an `s3://` video to land before the run fails."""
    return Param(
        default_s,
        type="integer",
        minimum=1,
        maximum=7 * 24 * 3600,
        title="Wait for the video (s)",
        description="Seconds to wait for an s3:// video that has not landed yet; then the run fails"
        " (not retried). The log names the key and the deadline. A file:// video is not waited for.",
    )


def probed_param() -> Param:
    """The archive scan's probe of the video, handed to the run it starts (reko.pipeline.reuse_probe)."""
    return Param(
        None,
        type=["null", "object"],
        properties={"fingerprint": {"type": "string"}, "info": {"type": "object"}},
        required=["fingerprint", "info"],
        title="Probe from the archive scan",
        description="Set by video_archive_scan: the video's duration, frame rate and size as the scan"
        " read them, and the version (size and ETag or modification time) it read. Used only while the"
        " video is that version; empty: the run reads the video itself.",
    )


def face_subject_params() -> dict[str, Param]:
    """A person as a clip subject (`video_clips`): a reference photo or a face of the faces index,
    and the similarity a face must reach to be theirs."""
    return {
        "face_photo_uri": Param(
            "",
            type="string",
            maxLength=2048,
            title="Face: reference photo",
            description=(
                "A JPEG or PNG photo of the person (file:// or s3://): one clip per stretch where"
                " their face is seen. Read into memory and never copied; the clips name the person"
                " by the best-matching face id. Leave Subject empty."
            ),
        ),
        "face_id": Param(
            "",
            type="string",
            maxLength=512,
            title="Face: face id",
            description=(
                "Instead of a photo: a face id of the faces index (e.g. from the search page's"
                " 'find this person'). Leave Subject empty."
            ),
        ),
        "face_threshold": Param(
            DEFAULT_THRESHOLD,
            type="number",
            minimum=0,
            maximum=100,
            title="Face: match threshold (similarity)",
            description=(
                "Faces at or above this similarity (0-100, Rekognition's scale on both backends)"
                " are the person."
            ),
        ),
    }
