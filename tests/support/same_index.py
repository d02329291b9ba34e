"""What one video left in the index, and a comparison that says exactly what differs.

The reliability tests analyse copies of one clip under different URIs (so runs share no frames or
cached results), so ids and fields that embed the video's id or its source URI are compared with
those replaced by placeholders. Fields that legitimately differ between two runs of the same video
(when, by which run, and how many API calls it took) are left out of the comparison: nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from reko.storage import video_id_for
from tests.conftest import snapshot

KINDS = ("detections", "segments", "videos")
# what one run did (calls, its MediaConvert proxy, its cost) and the run history (totals)
PER_RUN_FIELDS = frozenset(
    {"analysed_at", "processed_at", "run_id", "api_calls", "mediaconvert", "run_cost_usd", "totals"}
)
MAX_LINES = 40


@dataclass(frozen=True)
class IndexState:
    """Every document of one video in the detections, segments and videos indices, by kind and id."""

    video_uri: str
    video_id: str
    docs: dict[str, dict[str, dict[str, Any]]]

    def normalised(self, kind: str, skip_frames: frozenset[int] = frozenset()) -> dict[str, dict[str, Any]]:
        """Documents of `kind`, this video's id and URI replaced by placeholders, per-run fields dropped."""
        out = {}
        for doc_id, source in self.docs[kind].items():
            if kind == "detections" and source.get("frame_index") in skip_frames:
                continue
            kept = {k: v for k, v in source.items() if k not in PER_RUN_FIELDS}
            text = json.dumps(kept, sort_keys=True)
            text = text.replace(self.video_uri, "{source}").replace(self.video_id, "{video}")
            out[doc_id.replace(self.video_id, "{video}")] = json.loads(text)
        return out

    def frames(self) -> set[int]:
        """Frames that have at least one detection document."""
        return {d["frame_index"] for d in self.docs["detections"].values()}


def index_state(client: Any, names: Any, video_uri: str) -> IndexState:
    """Read one video's documents (after a refresh) from the three indices."""
    video_id = video_id_for(video_uri)
    docs = {kind: snapshot(client, getattr(names, kind), video_id) for kind in KINDS}
    return IndexState(video_uri, video_id, docs)


def index_differences(
    clean: IndexState,
    faulted: IndexState,
    *,
    kinds: tuple[str, ...] = KINDS,
    skip_frames: frozenset[int] = frozenset(),
) -> list[str]:
    """One line per difference: ids only on one side, then each differing field of a shared id."""
    lines: list[str] = []
    for kind in kinds:
        want, got = clean.normalised(kind, skip_frames), faulted.normalised(kind, skip_frames)
        if not want:
            lines.append(f"{kind}: the clean run has no documents (nothing would be compared)")
        missing, extra = sorted(want.keys() - got.keys()), sorted(got.keys() - want.keys())
        if missing:
            lines.append(f"{kind}: {len(missing)} ids only in the clean run: {missing[:10]}")
        if extra:
            lines.append(f"{kind}: {len(extra)} ids only in the faulted run: {extra[:10]}")
        for doc_id in sorted(want.keys() & got.keys()):
            a, b = want[doc_id], got[doc_id]
            for key in sorted(a.keys() | b.keys()):
                if a.get(key, "<absent>") != b.get(key, "<absent>"):
                    lines.append(
                        f"{kind} {doc_id} field {key!r}: clean {a.get(key, '<absent>')!r}"
                        f" != faulted {b.get(key, '<absent>')!r}"
                    )
    return lines


def assert_same_index(
    clean: IndexState,
    faulted: IndexState,
    *,
    kinds: tuple[str, ...] = KINDS,
    skip_frames: frozenset[int] = frozenset(),
) -> None:
    """Fail naming every id and field where the faulted run's index differs from the clean run's."""
    lines = index_differences(clean, faulted, kinds=kinds, skip_frames=skip_frames)
    if lines:
        more = f"\n... and {len(lines) - MAX_LINES} more" if len(lines) > MAX_LINES else ""
        raise AssertionError(
            f"index of {faulted.video_id} differs from the clean run's ({clean.video_id}):\n"
            + "\n".join(lines[:MAX_LINES])
            + more
        )


def doc_versions(client: Any, index: str, video_id: str) -> dict[str, int]:
    """`{document id: _version}` of one video's documents (after a refresh): how often each was written."""
    client.indices.refresh(index=index)
    hits = client.search(
        index=index,
        body={"size": 10000, "version": True, "query": {"term": {"video_id": video_id}}, "_source": False},
    )["hits"]["hits"]
    return {h["_id"]: h["_version"] for h in hits}
