"""Assets reko's DAGs announce and consume (shared so producer and consumer cannot drift)."""

from __future__ import annotations

from airflow.sdk import Asset, AssetAlias


def _asset(name: str, uri: str) -> Asset:
    """`Asset(name=name, uri=uri, group="reko")`, without Airflow's URI normalising at parse time.

    Normalising a URI looks its scheme up among every provider's URI handlers, which loads the
    providers manager and the amazon provider's S3 hook in every task process that parses a DAG
    file (~0.1 s quiet, 0.3 s on a busy machine; measured in bench/results/archive.md). No provider
    handles `reko://`, and these URIs are already in normal form (lower-case scheme, no trailing
    slash, query or fragment), so normalising would return them unchanged: the asset, as users,
    the scheduler and the dag processor see it, is the same (tests/test_dag_integrity.py checks).
    """
    asset = Asset(name=name, uri=f"x-{uri}", group="reko")  # `x-` schemes are never normalised
    object.__setattr__(asset, "uri", uri)  # attrs would re-run the normaliser on a plain setattr
    return asset


VIDEO_ANALYSED = _asset("reko_video_analysed", "reko://video_analysis/videos")
CLIPS_CUT = _asset("reko_clips_cut", "reko://video_clips/clips")

# The probe's outlet. A short video is analysed whole in the probe (one task process a run), so the
# probe announces VIDEO_ANALYSED then, and only then: through an alias, because Airflow announces a
# plain Asset outlet on every success, and the probe also succeeds when it hands a long video to
# the mapped path (where write_video_document announces it). Consumers see VIDEO_ANALYSED events.
VIDEO_ANALYSED_BY_PROBE = AssetAlias(name="reko_video_analysed_by_probe", group="reko")
