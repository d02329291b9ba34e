"""Faces on AWS: IndexFaces into a collection per index prefix, search by photo with
SearchFacesByImage, the faces deleted with the video. Every request is checked by botocore's
Stubber against the real service model; the control flow runs end to end against the loopback
Rekognition server (in-memory collections, faces told apart by the image's mean colour) with the
frames in moto's S3 and the real OpenSearch node."""

from __future__ import annotations

import base64
import io
import logging
import re
import uuid

import botocore.session
import pytest
from botocore.stub import Stubber

from reko.analysis.base import (
    FrameAnalysisError,
    RetryableAnalysisError,
    face_store_deleter,
    get_analysis,
    photo_searcher,
    traits,
)
from reko.aws import face_collection
from reko.aws.face_collection import (
    IndexFacesAnalyser,
    collection_id,
    delete_faces,
    external_image_id,
    search_collection,
)
from reko.aws.rekognition import RekognitionHook
from reko.index.client import IndexNames
from reko.localdev.moto_s3 import aws_connection, moto_s3
from reko.localdev.rekognition_server import RekognitionServer
from reko.storage import VideoStore, parse_uri, read_json, write_json

BUCKET = "reko-faces-frames"
MODEL = botocore.session.get_session().get_service_model("rekognition")
FRAME = "s3://aws_default@my-frames/work/race-0123456789/i1000ms/frames/race.0000003.jpg"
RED, BLUE, DARK, BLACK = (200, 40, 40), (40, 60, 200), (40, 40, 40), (3, 3, 3)


def pattern(operation: str, member: str) -> re.Pattern:
    """A parameter's pattern from the service model (Stubber checks types, not patterns)."""
    return re.compile(MODEL.operation_model(operation).input_shape.members[member].metadata["pattern"])


def jpeg(colour: tuple[int, int, int], width: int = 160, height: int = 120, quality: int = 90) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "JPEG", quality=quality)
    return out.getvalue()


@pytest.fixture
def aws_env(monkeypatch):
    """Fake credentials, so no test can reach a real account."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("REKO_INDEX_PREFIX", "reko")
    for key in ("REKO_FACE_QUALITY_FILTER", "REKO_FACE_MAX_FACES", "REKO_REKOGNITION_QUOTA_LOOKUP"):
        monkeypatch.delenv(key, raising=False)


def stub_hook(monkeypatch) -> tuple[RekognitionHook, Stubber]:
    """A hook whose client answers from a Stubber; the search and delete calls use it too."""
    hook = RekognitionHook(aws_conn_id=None, region_name="us-east-1", rate_limit=False)
    stubber = Stubber(hook.conn)
    stubber.activate()
    monkeypatch.setattr(face_collection, "_hook", lambda: hook)
    return hook, stubber


FACE_ID = "11111111-2222-4333-8444-555555555555"
DETAIL = {"BoundingBox": {"Width": 0.2, "Height": 0.3, "Left": 0.1, "Top": 0.1}, "Confidence": 99.5}
INDEXED = {
    "FaceRecords": [
        {
            "Face": {
                "FaceId": FACE_ID,
                "BoundingBox": DETAIL["BoundingBox"],
                "ImageId": "99999999-2222-4333-8444-555555555555",
                "ExternalImageId": "race-0123456789:i1000ms:0000003",
                "Confidence": 99.5,
            },
            "FaceDetail": DETAIL,
        }
    ],
    "UnindexedFaces": [
        {
            "Reasons": ["LOW_SHARPNESS"],
            "FaceDetail": {
                "BoundingBox": {"Width": 0.05, "Height": 0.07, "Left": 0.8, "Top": 0.2},
                "Confidence": 91.0,
            },
        }
    ],
    "FaceModelVersion": "7.0",
}


# ------------------------------------------------------------------------------------------------
# Names Rekognition accepts
# ------------------------------------------------------------------------------------------------


def test_collection_ids_are_valid_deterministic_and_distinct_per_prefix():
    valid = pattern("CreateCollection", "CollectionId")
    assert collection_id("reko") == "reko-faces-reko"
    odd = ["Reko Prod/ü", "Reko Prod/ö", "x" * 300, "reko:prod", ""]
    ids = [collection_id(p) for p in odd]
    assert all(valid.fullmatch(i) and len(i) <= 255 for i in ids), ids
    assert len(set(ids)) == len(ids)  # cleaning never merges two prefixes
    assert ids == [collection_id(p) for p in odd]  # deterministic


def test_external_image_ids_name_the_video_interval_and_frame():
    valid = pattern("IndexFaces", "ExternalImageId")
    assert external_image_id(parse_uri(FRAME)) == "race-0123456789:i1000ms:0000003"
    store = VideoStore.for_video("s3://aws_default@b/work", "s3://src/Zieleinlauf 10 km (ö).mp4", 0.5)
    odd = external_image_id(store.frame(12))
    assert valid.fullmatch(odd) and odd.endswith(f"{store.video_id[-10:]}:i500ms:0000012")
    long = parse_uri(f"file:///w/{'a' * 300}-0d7473f6fd/i1000ms/frames/x.0000007.jpg")  # ids are shorter
    cut = external_image_id(long)
    assert len(cut) == 255 and valid.fullmatch(cut) and cut.endswith("-0d7473f6fd:i1000ms:0000007")
    with pytest.raises(FrameAnalysisError, match="not a frame of the work tree"):
        external_image_id(parse_uri("s3://aws_default@b/loose.jpg"))


# ------------------------------------------------------------------------------------------------
# Requests (Stubber validates names and types against the Rekognition model)
# ------------------------------------------------------------------------------------------------


def test_index_faces_replaces_detect_faces_and_keeps_every_face(aws_env):
    """One IndexFaces call per frame answers what DetectFaces did: indexed faces with their
    FaceId, the others with the reason Rekognition did not store them."""
    from reko.faces.search import search_embeddings

    analysis = get_analysis("aws", "faces", {"min_confidence": 50})
    assert analysis.model_version == "rekognition-IndexFaces@reko-faces-reko"
    assert traits("aws").billed_per_image
    # the registry's traits choose the photo search and the face store, no backend branches
    assert photo_searcher("aws") is search_collection and photo_searcher("local") is search_embeddings
    assert face_store_deleter("aws") is delete_faces and face_store_deleter("local") is None
    hook = RekognitionHook(aws_conn_id=None, region_name="us-east-1", rate_limit=False)
    analyser = IndexFacesAnalyser({"min_confidence": 50}, hook=hook)
    with Stubber(hook.conn) as stubber:
        stubber.add_response(
            "index_faces",
            INDEXED,
            {
                "CollectionId": "reko-faces-reko",
                "Image": {"S3Object": {"Bucket": "my-frames", "Name": FRAME.split("my-frames/")[1]}},
                "ExternalImageId": "race-0123456789:i1000ms:0000003",
                "DetectionAttributes": ["DEFAULT"],
                "MaxFaces": 100,
                "QualityFilter": "AUTO",
            },
        )
        response = analyser.run(parse_uri(FRAME))
        stubber.assert_no_pending_responses()
    indexed, unindexed = response["FaceDetails"]
    assert indexed["FaceId"] == FACE_ID and indexed["BoundingBox"] == DETAIL["BoundingBox"]
    assert unindexed["UnindexedReasons"] == ["LOW_SHARPNESS"] and "FaceId" not in unindexed
    assert response["CollectionId"] == "reko-faces-reko"
    assert analysis.model_of(response) == "rekognition-IndexFaces@reko-faces-reko:7.0"


def test_the_collection_is_created_on_first_use_and_a_race_is_fine(aws_env, monkeypatch, tmp_path):
    monkeypatch.setenv("REKO_FACE_QUALITY_FILTER", "none")
    monkeypatch.setenv("REKO_FACE_MAX_FACES", "20")
    frame = tmp_path / "race-0123456789" / "i1000ms" / "frames" / "race.0000000.jpg"
    frame.parent.mkdir(parents=True)
    frame.write_bytes(jpeg(RED))
    expected = {
        "CollectionId": "reko-faces-reko",
        "Image": {"Bytes": frame.read_bytes()},
        "ExternalImageId": "race-0123456789:i1000ms:0000000",
        "DetectionAttributes": ["DEFAULT"],
        "MaxFaces": 20,
        "QualityFilter": "NONE",
    }
    created = {"StatusCode": 200, "CollectionArn": "arn:x", "FaceModelVersion": "7.0"}
    for creation in ("created", "another task made it first"):
        hook = RekognitionHook(aws_conn_id=None, region_name="us-east-1", rate_limit=False)
        analyser = IndexFacesAnalyser(hook=hook)
        with Stubber(hook.conn) as stubber:
            stubber.add_client_error("index_faces", "ResourceNotFoundException", expected_params=expected)
            if creation == "created":
                stubber.add_response("create_collection", created, {"CollectionId": "reko-faces-reko"})
            else:
                stubber.add_client_error(
                    "create_collection",
                    "ResourceAlreadyExistsException",
                    expected_params={"CollectionId": "reko-faces-reko"},
                )
            stubber.add_response("index_faces", INDEXED, expected)
            assert analyser.run(parse_uri(frame.as_uri()))["FaceDetails"][0]["FaceId"] == FACE_ID
            stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ThrottlingException", 400, RetryableAnalysisError),
        ("ProvisionedThroughputExceededException", 400, RetryableAnalysisError),
        ("InternalServerError", 500, RetryableAnalysisError),
        ("InvalidImageFormatException", 400, FrameAnalysisError),
        ("InvalidParameterException", 400, FrameAnalysisError),
        ("ServiceQuotaExceededException", 400, FrameAnalysisError),
        ("AccessDeniedException", 403, FrameAnalysisError),
    ],
)
def test_index_faces_errors_map_to_retryable_or_frame_failures(aws_env, tmp_path, code, status, expected):
    frame = tmp_path / "v-0123456789" / "i1000ms" / "frames" / "v.0000000.jpg"
    frame.parent.mkdir(parents=True)
    frame.write_bytes(jpeg(RED))
    hook = RekognitionHook(aws_conn_id=None, region_name="us-east-1", rate_limit=False)
    with Stubber(hook.conn) as stubber:
        stubber.add_client_error(
            "index_faces", service_error_code=code, service_message="nope", http_status_code=status
        )
        with pytest.raises(expected, match=f"IndexFaces {code}: nope"):
            IndexFacesAnalyser(hook=hook).run(parse_uri(frame.as_uri()))


def test_search_by_photo_request_and_errors(aws_env, monkeypatch, os_client):
    """SearchFacesByImage with the threshold as FaceMatchThreshold; no face, an unreadable photo,
    throttling and a collection that does not exist yet each get their answer."""
    from reko.faces.local import FaceNotFoundError
    from reko.faces.search import PhotoSearchError

    _, stubber = stub_hook(monkeypatch)
    names = IndexNames(f"reko-test-nofaces-{uuid.uuid4().hex[:6]}")  # no faces index: no documents
    photo = jpeg(RED, 400, 300)
    expected = {
        "CollectionId": collection_id(names.prefix),
        "Image": {"Bytes": photo},
        "MaxFaces": 50,
        "FaceMatchThreshold": 83.0,
    }
    answer = {
        "SearchedFaceBoundingBox": {"Width": 0.3, "Height": 0.4, "Left": 0.2, "Top": 0.1},
        "SearchedFaceConfidence": 99.0,
        "FaceMatches": [{"Similarity": 97.5, "Face": {"FaceId": FACE_ID}}],
        "FaceModelVersion": "7.0",
    }
    stubber.add_response("search_faces_by_image", answer, expected)
    found = search_collection(
        os_client, names, photo, threshold=83.0, video_ids=None, max_matches=50, search=None
    )
    assert found["search"] == "rekognition" and found["matches"] == 0  # the face id has no document
    assert found["query"]["bbox"] == answer["SearchedFaceBoundingBox"]
    stubber.add_response("search_faces_by_image", answer, {**expected, "MaxFaces": 4096})  # video filter: all
    search_collection(os_client, names, photo, threshold=83.0, video_ids=["v"], max_matches=50, search=None)

    errors = [
        ("InvalidParameterException", 400, FaceNotFoundError, "no face found in the photo"),
        ("InvalidImageFormatException", 400, PhotoSearchError, "cannot read the photo"),
        ("ThrottlingException", 400, RetryableAnalysisError, "try again"),
    ]
    for code, status, error, message in errors:
        stubber.add_client_error("search_faces_by_image", code, "nope", status, expected_params=expected)
        with pytest.raises(error, match=message):
            search_collection(
                os_client, names, photo, threshold=83.0, video_ids=None, max_matches=50, search=None
            )
    stubber.add_client_error("search_faces_by_image", "ResourceNotFoundException", expected_params=expected)
    empty = search_collection(
        os_client, names, photo, threshold=83.0, video_ids=None, max_matches=50, search=None
    )
    assert (empty["matches"], empty["videos"], empty["search"]) == (0, [], "rekognition")
    with pytest.raises(PhotoSearchError, match="not a JPEG or PNG"):
        search_collection(
            os_client, names, b"%PDF-1.7", threshold=83.0, video_ids=None, max_matches=5, search=None
        )
    with pytest.raises(PhotoSearchError, match="search on AWS"):
        search_collection(
            os_client, names, photo, threshold=83.0, video_ids=None, max_matches=5, search="knn"
        )
    stubber.assert_no_pending_responses()


def test_delete_faces_in_batches_within_the_limit(aws_env, monkeypatch):
    _, stubber = stub_hook(monkeypatch)
    names = IndexNames("reko")
    ids = sorted(str(uuid.UUID(int=i + 1)) for i in range(4097))
    stubber.add_response(
        "delete_faces",
        {
            "DeletedFaces": ids[:4095],
            "UnsuccessfulFaceDeletions": [{"FaceId": ids[4095], "Reasons": ["FACE_NOT_FOUND"]}],
        },
        {"CollectionId": "reko-faces-reko", "FaceIds": ids[:4096]},
    )
    stubber.add_response(
        "delete_faces",
        {"DeletedFaces": ids[4096:]},
        {"CollectionId": "reko-faces-reko", "FaceIds": ids[4096:]},
    )
    report = delete_faces(ids + ids[:10], names)  # duplicates are sent once
    assert (report["requested"], report["deleted"], report["already_gone"]) == (4097, 4096, 1)

    stubber.add_response(
        "delete_faces",
        {
            "UnsuccessfulFaceDeletions": [{"FaceId": ids[0], "Reasons": ["ASSOCIATED_TO_AN_EXISTING_USER"]}],
        },
        {"CollectionId": "reko-faces-reko", "FaceIds": ids[:1]},
    )
    with pytest.raises(RuntimeError, match="refused to delete 1 faces .*ASSOCIATED_TO_AN_EXISTING_USER"):
        delete_faces(ids[:1], names)
    stubber.add_client_error(
        "delete_faces",
        "ResourceNotFoundException",
        expected_params={"CollectionId": "reko-faces-reko", "FaceIds": ids[:2]},
    )
    assert delete_faces(ids[:2], names)["already_gone"] == 2  # no collection: nothing stored
    stubber.add_client_error(
        "delete_faces",
        "ThrottlingException",
        expected_params={"CollectionId": "reko-faces-reko", "FaceIds": ids[:2]},
    )
    with pytest.raises(Exception, match="ThrottlingException"):
        delete_faces(ids[:2], names)
    stubber.assert_no_pending_responses()
    assert delete_faces([], names)["requested"] == 0  # nothing to delete: no call


# ------------------------------------------------------------------------------------------------
# End to end: loopback Rekognition + moto S3 + the real OpenSearch node
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def aws_faces(monkeypatch, tmp_path, os_client):
    with moto_s3(BUCKET) as (endpoint, s3):
        server = RekognitionServer(
            tps=1000, s3_reader=lambda bucket, key: s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        )
        server.start()
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_connection(endpoint, server.endpoint))
        names = IndexNames.current()  # the session's indices (made once): only this video is touched
        monkeypatch.setenv("REKO_BACKEND", "aws")  # the deployment's backend answers photo searches
        monkeypatch.setenv("REKO_REKOGNITION_LIMITER_DIR", str(tmp_path / "limiter"))
        monkeypatch.setenv("REKO_REKOGNITION_THREADS", "4")
        monkeypatch.setenv("REKO_REKOGNITION_MAX_ATTEMPTS", "2")
        for key in ("REKO_FACE_QUALITY_FILTER", "REKO_FACE_MAX_FACES", "REKO_REKOGNITION_TPS"):
            monkeypatch.delenv(key, raising=False)
        face_collection._HOOKS.clear()  # a hook is bound to the endpoint it first saw
        try:
            yield {"s3": s3, "server": server, "names": names}
        finally:
            face_collection._HOOKS.clear()
            server.stop()


# frame -> what it shows: two people (red, blue) at several sizes, a face too dark to be stored,
# a frame with no face, and a last frame byte-identical to the one before it (its result is copied)
FRAMES = [
    jpeg(RED, 160, 120),
    jpeg(RED, 200, 150, 80),
    jpeg(BLUE, 160, 120),
    jpeg(BLUE, 240, 180),
    jpeg(DARK),
    jpeg(BLACK),
    jpeg(RED, 320, 240),
]
FRAMES.append(FRAMES[-1])
RED_FRAMES, BLUE_FRAMES = {0, 1, 6, 7}, {2, 3}
RESULT_KEYS = ("query", "threshold", "max_distance", "search", "matches", "truncated", "videos")
RESULT_KEYS += ("embed_ms", "search_ms")  # find_person's keys, the same on both backends


def faces_of(os_client, names: IndexNames, video_id: str) -> list[dict]:
    os_client.indices.refresh(index=names.faces)
    body = {"size": 100, "query": {"term": {"video_id": video_id}}, "sort": [{"frame_index": "asc"}]}
    return [h["_source"] for h in os_client.search(index=names.faces, body=body)["hits"]["hits"]]


def test_faces_analysed_on_aws_are_found_by_photo_and_deleted_with_the_video(aws_faces, os_client, caplog):
    from reko.faces.local import FaceNotFoundError
    from reko.faces.search import PhotoSearchError, find_person
    from reko.index.faces import load_faces
    from reko.index.lease import Holder
    from reko.maintenance import delete_video
    from reko.pipeline import analyse_batch

    s3, server, names = aws_faces["s3"], aws_faces["server"], aws_faces["names"]
    collection = collection_id(names.prefix)
    store = VideoStore.for_video(f"s3://aws_default@{BUCKET}/work", "s3://src/finish.mp4", 1.0)
    for index, data in enumerate(FRAMES):
        key = f"work/{store.video_id}/i1000ms/frames/{store.stem}.{index:07d}.jpg"
        s3.put_object(Bucket=BUCKET, Key=key, Body=data)

    # analyse: 4 threads race to create the collection on first use; every frame succeeds
    caplog.set_level(logging.DEBUG)
    report = analyse_batch(
        store,
        0,
        len(FRAMES),
        backend="aws",
        analyses=["faces"],
        interval_s=1.0,
        analysis_options={"min_confidence": 50},
    )
    assert report["failed"] == [] and report["made"] == len(FRAMES) - 1 and report["duplicates"] == 1
    assert list(server.collections) == [collection]
    assert server.calls["CreateCollection"] >= 1 and "DetectFaces" not in server.calls  # one call a frame
    stored = server.collections[collection]
    assert len(stored) == 5  # frames 0-3 and 6: the dark face is not stored, the black frame has none
    result = read_json(store.result("aws", "faces", 4))["response"]["FaceDetails"]
    assert result[0]["UnindexedReasons"] == ["LOW_BRIGHTNESS"] and "FaceId" not in result[0]

    # index: every detected face has a document; the stored ones carry their face id
    loaded = load_faces(os_client, names, store, frame_count=len(FRAMES), backend="aws", min_confidence=50)
    docs = faces_of(os_client, names, store.video_id)
    assert loaded["faces"] == len(docs) == 7
    with_ids = {d["frame_index"]: d["face_id"] for d in docs if "face_id" in d}
    assert set(with_ids) == {0, 1, 2, 3, 6, 7} and set(with_ids.values()) == set(stored)
    assert with_ids[6] == with_ids[7]  # the identical frame shares its face
    assert all(
        d["backend"] == "aws" and d["model"].startswith(f"rekognition-IndexFaces@{collection}") for d in docs
    )

    # search by photo: photos not in the video, through find_person (the route's function)
    searches = server.calls["SearchFacesByImage"]
    red = find_person(os_client, names, jpeg(RED, 400, 300, 75))
    assert set(red) == set(RESULT_KEYS)
    assert red["search"] == "rekognition" and red["threshold"] == 83.0 and red["matches"] == 4
    (video,) = red["videos"]
    assert video["video_id"] == store.video_id and {f["frame_index"] for f in video["frames"]} == RED_FRAMES
    assert (video["first_ms"], video["last_ms"]) == (0, 7000)
    frame = video["frames"][0]
    assert set(frame) == {"frame_index", "timestamp_ms", "frame_uri", "faces"}
    assert set(frame["faces"][0]) == {"bbox", "confidence", "similarity", "face"}
    assert all(83.0 <= face["similarity"] <= 100 for f in video["frames"] for face in f["faces"])
    blue = find_person(os_client, names, jpeg(BLUE, 500, 400))
    assert {f["frame_index"] for v in blue["videos"] for f in v["frames"]} == BLUE_FRAMES
    nobody = find_person(os_client, names, jpeg((40, 200, 60), 300, 300))
    assert nobody["matches"] == 0 and nobody["videos"] == []
    elsewhere = find_person(os_client, names, jpeg(RED, 400, 300), video_ids=["another-0000000000"])
    assert elsewhere["videos"] == []
    strict = find_person(os_client, names, jpeg(RED, 400, 300, 40), threshold=99.99)
    assert strict["matches"] < red["matches"]
    assert server.calls["SearchFacesByImage"] - searches == 5  # each search is one billed image
    with pytest.raises(FaceNotFoundError, match="no face found"):
        find_person(os_client, names, jpeg(BLACK, 300, 300))
    with pytest.raises(PhotoSearchError, match="not a JPEG or PNG"):
        find_person(os_client, names, b"%PDF-1.7 not a photo")

    # nothing about a face went into the logs (botocore logs bodies at DEBUG)
    text = caplog.text
    assert "SearchFacesByImage: 1 image billed" in text  # the log works; it holds counts only
    for secret in ("FaceDetails", "FaceRecords", "FaceMatches", "Similarity", "BoundingBox", "Landmarks"):
        assert secret not in text, secret
    assert base64.b64encode(jpeg(RED, 400, 300, 75))[:40].decode() not in text

    # a frame analysed again no longer names its face: the reload releases it from the collection
    path = store.result("aws", "faces", 0)
    rewritten = read_json(path)
    released_id = rewritten["response"]["FaceDetails"].pop(0)["FaceId"]
    write_json(path, rewritten)
    reload = load_faces(os_client, names, store, frame_count=len(FRAMES), backend="aws", min_confidence=50)
    assert reload["store_faces_released"] == 1 and reload["stale_deleted"] == 1
    assert released_id not in server.collections[collection] and len(server.collections[collection]) == 4
    again = load_faces(os_client, names, store, frame_count=len(FRAMES), backend="aws", min_confidence=50)
    assert again["store_faces_released"] == 0 and server.calls["DeleteFaces"] == 1  # converged: no call

    # delete: DeleteFaces fails (throttled) -> nothing of the video is deleted; run again -> all gone
    me = Holder("video_maintenance", "delete-1")
    server.tps = 0
    with pytest.raises(Exception, match="ThrottlingException"):
        delete_video(os_client, names, store.root_uri, store.video_id, me, lambda holder: False)
    assert len(server.collections[collection]) == 4 and len(faces_of(os_client, names, store.video_id)) == 6
    assert read_json(store.result("aws", "faces", 1)) is not None
    server.tps = 1000
    # a face without a document (under a later run's threshold) is still found in the results
    os_client.delete(index=names.faces, id=f"{store.video_id}:0000001:face:000", params={"refresh": "true"})
    removed = delete_video(os_client, names, store.root_uri, store.video_id, me, lambda holder: False)
    assert removed["face_stores"]["aws"]["deleted"] == 4 and removed["faces"] == 5
    assert server.collections[collection] == {}
    assert faces_of(os_client, names, store.video_id) == []
    assert read_json(store.result("aws", "faces", 1)) is None
    assert find_person(os_client, names, jpeg(RED, 400, 300, 75))["videos"] == []
