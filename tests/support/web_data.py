"""Shared data for the web page's tests: the analysed sample plus a markup detection and a clip file."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

from reko.storage import video_id_for
from tests.conftest import SAMPLE_VIDEO

XSS = "<img src=x onerror=alert(1)>"
XSS_VIDEO = "xss-check-0000000000"
# the sample's runners with names, as a race roster gives them (3318 passes twice: a lap)
ROSTER = (
    "bib,name,category\n1042,Ana Silva,F35\n257,Ben Okafor,M40\n3318,Kim Min-jun,M30\n6094,Lea Brandt,F20\n"
    "781,Tom Kim,M20\n2465,Ida Berg,F45\n908,Raj Patel,M50\n"
)


@pytest.fixture(scope="module")
def own_indices():
    """Indices of this module alone: other modules index copies of the sample under other ids,
    and the page's counts (hits, videos, pages) must be the sample's only."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REKO_INDEX_PREFIX", f"{os.environ['REKO_INDEX_PREFIX']}-web-{uuid.uuid4().hex[:6]}")
        yield os.environ["REKO_INDEX_PREFIX"]


@pytest.fixture(scope="module")
def analysed_sample(own_indices, analysis_dag, os_client):
    """The sample's video id, analysed into this module's indices (frames and results are cached);
    its runner passes carry the roster's names."""
    from reko.index.client import IndexNames
    from reko.index.passes import load_passes
    from reko.runners.passes import PassSettings
    from reko.runners.roster import Roster

    video_id = video_id_for(SAMPLE_VIDEO.as_uri())
    assert analysis_dag.test(run_conf={"video_uri": SAMPLE_VIDEO.as_uri()}).state == "success"
    names = IndexNames.current()
    roster = Roster.parse(ROSTER, "web roster")
    found = load_passes(
        os_client, names, video_id, backend="local", settings=PassSettings(1000), roster=roster
    )
    assert found["passes"] == 8, found
    os_client.indices.refresh(index=f"{names.prefix}-*")
    return video_id


@pytest.fixture(scope="module")
def web_data(analysed_sample, os_client):
    """Extra documents: a detection whose text is markup, and a clip file under the storage root."""
    from reko.config import work_uri
    from reko.index.client import IndexNames
    from reko.web.media import StorageRoot

    names = IndexNames.current()
    frame = os_client.search(
        index=names.detections, body={"size": 1, "query": {"term": {"value_norm": "1042"}}}
    )["hits"]["hits"][0]["_source"]
    os_client.index(
        index=names.detections,
        id=f"{XSS_VIDEO}:0000000:text:000",
        body={
            **frame,
            "video_id": XSS_VIDEO,
            "frame_index": 0,
            "timestamp_ms": 0,
            "ordinal": 0,
            "value": XSS,
            "value_norm": XSS.upper(),
            "confidence": 91.5,
            "text_type": "LINE",  # several words: searched as a line
        },
    )
    root = StorageRoot.parse(work_uri())
    clip = f"{root.path}/{analysed_sample}/clips/text/web-test/clip.mp4"
    Path(clip).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(SAMPLE_VIDEO, clip)
    os_client.index(
        index=names.clips,
        id=f"{analysed_sample}:text:web-test",
        body={
            "video_id": analysed_sample,
            "kind": "text",
            "subject": "Web Test",
            "subject_norm": "WEB TEST",
            "clip_uri": Path(clip).as_uri(),
            "start_ms": 0,
            "end_ms": 38_000,
            "duration_s": 38.0,
            "run_id": "manual__web-test",
            "dag_id": "video_clips",
        },
    )
    os_client.indices.refresh(index=f"{names.prefix}-*")
    return {"video_id": analysed_sample, "clip_path": Path(clip)}
