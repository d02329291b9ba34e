"""Local faces: dlib's detector and embedding on real photos, Rekognition-shaped, opt-in, and
clear errors for bad input."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from reko.analysis.base import check_available, get_analysis, registered
from reko.faces.local import FaceNotFoundError, LocalFaceAnalyser, embed_photo
from reko.faces.similarity import distance_for, l2_from_lucene_score, similarity
from reko.storage import parse_uri

REPO = Path(__file__).resolve().parents[1]
PHOTOS = REPO / "include" / "sample" / "faces"


def photo(name: str) -> bytes:
    return (PHOTOS / f"{name}.jpg").read_bytes()


def frame_with(placements: list[tuple[str, int, int, float]]) -> tuple[bytes, list[tuple[float, ...]]]:
    """A 1280x720 JPEG with photos pasted at (x, y) scaled by s; the true face boxes (ratios)."""
    from PIL import Image

    manifest = json.loads((PHOTOS / "photos.json").read_text())
    canvas = Image.new("RGB", (1280, 720), (96, 110, 120))
    truth = []
    for name, x, y, s in placements:
        img = Image.open(PHOTOS / f"{name}.jpg").convert("RGB")
        img = img.resize((round(img.width * s), round(img.height * s)))
        canvas.paste(img, (x, y))
        x0, y0, x1, y1 = manifest[name]["face_box"]
        truth.append(((x + x0 * s) / 1280, (y + y0 * s) / 720, (x + x1 * s) / 1280, (y + y1 * s) / 720))
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=90)
    return out.getvalue(), truth


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def corners(box: dict) -> tuple[float, ...]:
    return (box["Left"], box["Top"], box["Left"] + box["Width"], box["Top"] + box["Height"])


def dist(a: list[float], b: list[float]) -> float:
    return math.dist(a, b)


@pytest.fixture(scope="module")
def analyser() -> LocalFaceAnalyser:
    return LocalFaceAnalyser()


def test_faces_are_found_where_they_are_in_rekognition_shape(analyser):
    data, truth = frame_with([("obama-1", 60, 200, 0.8), ("biden-1", 700, 120, 0.7), ("t1-0", 420, 420, 1.0)])
    response = analyser.detect_faces(data)
    faces = response["FaceDetails"]
    assert len(faces) == 3
    assert len(response["Embeddings"]) == 3
    assert all(len(e) == 128 for e in response["Embeddings"])
    assert response["FaceModelVersion"].startswith("dlib-")
    for true_box in truth:
        best = max(faces, key=lambda f: iou(corners(f["BoundingBox"]), true_box))
        assert iou(corners(best["BoundingBox"]), true_box) > 0.6
        assert 50 <= best["Confidence"] <= 100
        assert {lm["Type"] for lm in best["Landmarks"]} == {"eyeLeft", "eyeRight", "nose"}
    assert analyser.detect_faces(data) == response  # deterministic


def test_same_person_is_near_and_different_people_are_far(analyser):
    data, truth = frame_with([("obama-1", 100, 150, 0.9), ("biden-1", 760, 150, 0.9)])
    response = analyser.detect_faces(data)
    by_box = {
        min(range(2), key=lambda i: -iou(corners(f["BoundingBox"]), truth[i])): e
        for f, e in zip(response["FaceDetails"], response["Embeddings"], strict=True)
    }
    query = embed_photo(photo("obama-2"))  # another photo of the person, not the one in the frame
    assert query.faces_in_photo == 1
    assert dist(query.embedding, by_box[0]) < 0.5
    assert dist(query.embedding, by_box[1]) > 0.6
    assert similarity(dist(query.embedding, by_box[0])) > similarity(dist(query.embedding, by_box[1]))


def test_similarity_mapping():
    assert similarity(0.0) == 100.0
    assert similarity(0.6) == pytest.approx(80.0)
    assert similarity(5.0) == 0.0
    assert distance_for(80.0) == pytest.approx(0.6)
    assert l2_from_lucene_score(1 / (1 + 0.25)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="0-100"):
        distance_for(120)


def test_bad_photos_get_a_reason():
    with pytest.raises(ValueError, match="not a JPEG or PNG"):
        embed_photo(b"GIF89a not really")
    with pytest.raises(ValueError, match="empty"):
        embed_photo(b"")
    from PIL import Image

    blank = io.BytesIO()
    Image.new("RGB", (400, 300), (200, 30, 30)).save(blank, "PNG")
    with pytest.raises(FaceNotFoundError, match="no face found in the photo"):
        embed_photo(blank.getvalue())


def test_faces_are_a_local_analysis_through_the_registry(tmp_path):
    assert "faces" in registered("local")
    check_available("local", ["text", "faces"])
    frame = tmp_path / "v.0000000.jpg"
    frame.write_bytes(frame_with([("collins-1", 500, 250, 1.5)])[0])
    analysis = get_analysis("local", "faces")
    response = analysis.run(parse_uri(frame.as_uri()))
    assert (analysis.kind, analysis.backend) == ("faces", "local")
    assert len(response["FaceDetails"]) == 1


def test_faces_are_never_a_default_analysis():
    from reko.params import analysis_settings_params

    assert analysis_settings_params()["analyses"].value == ["text"]


def test_importing_the_faces_code_loads_no_model():
    code = (
        "import sys, reko.faces.local, reko.faces.similarity;"
        "print('dlib' in sys.modules, 'numpy' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO / "plugins"), "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.split() == ["False", "False"]


def test_tracks_do_not_swap_people_who_cross():
    """Two people cross in the middle of the frame; position alone would be ambiguous there."""
    from reko.faces.tracks import TrackedFace, build_face_tracks

    a, b = [0.1] * 128, [0.1] * 64 + [0.2] * 64  # 0.8 apart: two people
    faces = []
    for i in range(9):
        t = i * 400
        xa, xb = 0.1 + 0.1 * i, 0.9 - 0.1 * i
        faces.append(TrackedFace(f"v:{i:07d}:face:000", i, t, xa, 0.4, 0.1, 0.18, a))
        faces.append(TrackedFace(f"v:{i:07d}:face:001", i, t, xb, 0.42, 0.1, 0.18, b))
    faces.append(TrackedFace("v:0000030:face:000", 30, 12000, 0.5, 0.4, 0.1, 0.18, a))  # much later
    tracks = build_face_tracks(faces)
    assert len(tracks) == 3
    assert [len(t.faces) for t in tracks] == [9, 9, 1]
    for track in tracks[:2]:
        assert len({tuple(f.embedding) for f in track.faces}) == 1
    assert tracks[0].track_id("v") == "v:ft:0000000:000"


def runner(frames: range, x0: float, vx: float, face_h: float = 0.12):
    """A runner's face boxes and bib boxes moving together (bib ~2 face heights below the face)."""
    from reko.faces.link import FaceBox

    faces, bibs = [], []
    for i in frames:
        x = x0 + vx * i
        faces.append(FaceBox(i, i * 500, x, 0.2, face_h * 0.6, face_h))
        bib = {"left": x - 0.01, "top": 0.2 + face_h / 2 + 2.1 * face_h - 0.03, "width": 0.09, "height": 0.06}
        bibs.append({"frame_index": i, "timestamp_ms": i * 500, "bbox": bib})
    return faces, bibs


def test_a_face_moving_with_a_bib_is_linked_and_widens_the_pass():
    from reko.faces.link import extend_pass, link

    faces_a, bibs_a = runner(range(0, 12), 0.05, 0.06)  # face seen in 0-11
    faces_b, bibs_b = runner(range(3, 10), 0.9, -0.07)  # another runner, the other way
    spectator = [f.__class__(f.frame_index, f.timestamp_ms, 0.4, 0.05, 0.07, 0.12) for f in faces_a]
    tracks = {"ft-a": faces_a, "ft-b": faces_b, "ft-spectator": spectator}
    passes = {"p-a": bibs_a[2:9], "p-b": bibs_b}  # bib a readable only in frames 2-8
    links = link(tracks, passes)
    assert {p: v["face_track_id"] for p, v in links.items()} == {"p-a": "ft-a", "p-b": "ft-b"}
    assert links["p-a"]["fit"] == 1.0 and links["p-a"]["shared_frames"] == 7
    doc = {"start_ms": 1000, "end_ms": 4000, "start_frame": 2, "end_frame": 8, "frames": bibs_a[2:9]}
    extend_pass(doc, faces_a, links["p-a"])
    assert (doc["start_frame"], doc["end_frame"], doc["start_ms"], doc["end_ms"]) == (0, 11, 0, 5500)
    assert (doc["bib_start_ms"], doc["bib_end_ms"]) == (1000, 4000)
    assert doc["face_only_frames"] == [0, 1, 9, 10, 11]


def test_a_face_beside_the_bib_or_seen_once_with_it_is_not_linked():
    from reko.faces.link import FaceBox, link

    faces, bibs = runner(range(0, 6), 0.1, 0.05)
    beside = [FaceBox(f.frame_index, f.timestamp_ms, f.left + 0.3, f.top, f.width, f.height) for f in faces]
    assert link({"ft": beside}, {"p": bibs}) == {}
    assert link({"ft": faces[:1]}, {"p": bibs}) == {}  # one shared frame is chance


def test_the_numpy_embedder_gives_dlibs_vectors_and_distances():
    """The default embedder runs dlib's ResNet in numpy: on every real photo (its largest face, and
    every face of a frame holding several) each component equals dlib's to 1e-3, and so does every
    pairwise distance, so the same person stays near and other people far by the same amounts."""
    from reko.faces.local import embedder

    assert embedder() == "numpy"  # the default, unless REKO_FACE_EMBEDDER says otherwise
    manifest = json.loads((PHOTOS / "photos.json").read_text())
    names = sorted(manifest)
    assert len(names) >= 10
    fast = {n: embed_photo(photo(n), "numpy").embedding for n in names}
    ref = {n: embed_photo(photo(n), "dlib").embedding for n in names}
    worst = max(abs(a - b) for n in names for a, b in zip(fast[n], ref[n], strict=True))
    assert worst <= 1e-3, worst
    assert worst > 0.0  # float32 rounding differs: two computations were compared, not one twice
    same, other = [], []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            d_fast, d_ref = dist(fast[a], fast[b]), dist(ref[a], ref[b])
            assert abs(d_fast - d_ref) <= 1e-3, (a, b, d_fast, d_ref)
            (same if manifest[a]["person"] == manifest[b]["person"] else other).append(d_ref)
    assert same and other and max(same) < min(other)  # the photos do separate people

    data, _ = frame_with([("obama-1", 60, 200, 0.8), ("biden-1", 700, 120, 0.7), ("t1-0", 420, 420, 1.0)])
    by_numpy = LocalFaceAnalyser(embedder_name="numpy").detect_faces(data)
    by_dlib = LocalFaceAnalyser(embedder_name="dlib").detect_faces(data)
    assert by_numpy["FaceDetails"] == by_dlib["FaceDetails"]
    assert len(by_numpy["Embeddings"]) == 3
    for a, b in zip(by_numpy["Embeddings"], by_dlib["Embeddings"], strict=True):
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) <= 1e-3
    # the cache key tells them apart: the vectors are close, not bit-identical
    assert by_numpy["FaceModelVersion"] != by_dlib["FaceModelVersion"]
    assert by_numpy["FaceModelVersion"].endswith("-numpy")


def test_the_embedder_switch_refuses_unknown_values(monkeypatch):
    from reko.faces.local import embedder

    monkeypatch.setenv("REKO_FACE_EMBEDDER", "dlib")
    assert embedder() == "dlib"
    assert LocalFaceAnalyser().embedder == "dlib"
    monkeypatch.setenv("REKO_FACE_EMBEDDER", "onnx")
    with pytest.raises(ValueError, match="REKO_FACE_EMBEDDER"):
        embedder()


def test_a_file_that_is_not_dlibs_face_resnet_is_refused(tmp_path):
    from reko.faces.local import _SHAPE_MODEL, model_dir
    from reko.faces.resnet import ResNet

    with pytest.raises(ValueError, match="not a dlib loss_metric network"):
        ResNet(model_dir() / _SHAPE_MODEL)
    from reko.faces.local import _EMBED_MODEL

    data = (model_dir() / _EMBED_MODEL).read_bytes()
    cut = tmp_path / "cut.dat"
    cut.write_bytes(data[:5_000_000])  # inside a tensor
    with pytest.raises(ValueError, match="truncated"):
        ResNet(cut)
    cut.write_bytes(data[: data.index(b"\x01\x04fc_2")])  # every layer but the last
    with pytest.raises(ValueError, match="is not dlib's face ResNet v1"):
        ResNet(cut)
