"""Assets reko's DAGs announce and consume (shared so producer and consumer cannot drift)."""

from __future__ import annotations

from airflow.sdk import Asset

VIDEO_ANALYSED = Asset(name="reko_video_analysed", uri="reko://video_analysis/videos", group="reko")
CLIPS_CUT = Asset(name="reko_clips_cut", uri="reko://video_clips/clips", group="reko")
