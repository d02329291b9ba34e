"""The search page's FastAPI app, mounted by the Airflow api-server under `/reko`.

Every route sits on one router guarded by Airflow's own `requires_authenticated()` (the UI's JWT
cookie or a bearer token; a plugin's routes are open otherwise), and each route checks the DAG
whose data it serves through Airflow's auth manager: reading `video_analysis` for the page, search,
search by photo, videos and frames; reading `video_clips` for clips and clip runs; triggering
`video_clips` for a clip request. Never the request's `dag_id` parameter: Airflow's
`requires_access_dag` takes that from the query string, so any DAG a user may read would open the
page's data. Browsers without a session are sent to Airflow's login page; API clients get the 401.
Clip requests are forwarded to Airflow's REST API with the caller's own credential, so Airflow
checks them again.
"""

from __future__ import annotations

import asyncio
import logging
from functools import cache
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, model_validator

from reko.config import REPO_ROOT, work_uri
from reko.index.client import IndexNames
from reko.web import search
from reko.web.media import (
    MediaPathError,
    StorageRoot,
    local_file,
    media_origins,
    media_type,
    presigned_url,
    source_video,
)

log = logging.getLogger(__name__)
ASSET_DIR = REPO_ROOT / "include" / "web"
ASSETS = {"app.js": "text/javascript", "app.css": "text/css", "favicon.svg": "image/svg+xml"}
ANALYSIS_DAG_ID = "video_analysis"
VIDEO_URI_FIELDS = ["source_uri", "proxy_uri"]  # a browser-friendly proxy, when a backend writes one
CLIPS_DAG_ID = "video_clips"
QUEUED_TOO_LONG_S = 30  # a queued clip run that has not started by then gets a reason on the page
# The page's own documents never go into frames of other origins, scripts come from here only,
# and frames and clips from here or the storage endpoint presigned URLs point to (never any https:).
CSP = (
    "default-src 'self'; img-src 'self' data:{media}; media-src 'self'{media}; "
    "script-src 'self'; style-src 'self'; connect-src 'self'; frame-ancestors 'self'; base-uri 'none'"
)
# On every response (JSON, files, redirects, errors): no content sniffing of frames or clips.
SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff")]


def content_security_policy(root: StorageRoot) -> str:
    media = "".join(f" {origin}" for origin in media_origins(root))
    return CSP.format(media=media)


class _SecurityHeaders:
    """ASGI wrapper adding `SECURITY_HEADERS` to every response start, 500s included."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in SECURITY_HEADERS if n not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


class _App(FastAPI):
    """FastAPI whose whole stack (its server-error responses too) sends `SECURITY_HEADERS`."""

    def build_middleware_stack(self) -> Any:
        return _SecurityHeaders(super().build_middleware_stack())


@cache
def _client():
    from reko.index.client import get_client

    return get_client()


def opensearch():
    """The OpenSearch client (a dependency, so tests and benchmarks can swap it)."""
    return _client()


OpenSearchDep = Annotated[Any, Depends(opensearch)]


def storage_root() -> StorageRoot:
    return StorageRoot.parse(work_uri())


def _media_url(request: Request, root: StorageRoot, uri: str | None) -> str | None:
    key = root.key_of(uri)
    if key is None:
        return None
    return f"{request.scope.get('root_path', '')}/media/{quote(key)}"


def _with_media_urls(request: Request, result: dict) -> dict:
    root = storage_root()
    for video in result["videos"]:
        for frame in video["frames"]:
            frame["frame_url"] = _media_url(request, root, frame.pop("frame_uri", None))
    return result


PHOTO_TYPES = frozenset({"image/jpeg", "image/png", "application/octet-stream"})


async def _read_capped(request: Request, limit: int) -> bytes:
    """The request body, refused with a 413 as soon as it passes `limit` bytes (reading stops there)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(status_code=413, detail=f"the photo is over the {limit:,} byte limit")
        chunks.append(chunk)
    if not size:
        raise HTTPException(status_code=400, detail="no photo: the request body is empty")
    return b"".join(chunks)


def _bad_input(exc: Exception) -> HTTPException:
    return HTTPException(status_code=400, detail=str(exc))


class ClipRequest(BaseModel):
    """What the page sends to ask for clips of one subject (the `video_clips` Params): a text, or a
    person by a face id of the faces index (never a photo: the page's photo is not kept)."""

    subject: str = Field(default="", max_length=256)
    face_id: str | None = Field(default=None, min_length=1, max_length=512)
    face_threshold: float | None = Field(default=None, ge=0, le=100)
    video_ids: list[str] = Field(default_factory=list, max_length=1000)
    padding_s: float | None = Field(default=None, ge=0, le=600)
    merge_gap_s: float | None = Field(default=None, ge=0, le=3600)
    min_confidence: float | None = Field(default=None, ge=0, le=100)
    force: bool = False  # cut again even when the same clips exist or are being cut

    @model_validator(mode="after")
    def one_subject(self) -> ClipRequest:
        """A text or a face, exactly one (a 422 naming the problem)."""
        has_text, has_face = bool(self.subject.strip()), bool((self.face_id or "").strip())
        if has_text and has_face:
            raise ValueError("give a subject or a face_id, not both")
        if not has_text and not has_face:
            raise ValueError("a subject (a bib number or a text) or a face_id is required")
        return self


CLIP_DEFAULTS = {"padding_s": 2.0, "merge_gap_s": 3.0, "min_confidence": 80.0}  # video_clips' Params


def _clip_subject(conf: dict) -> str:
    """The subject as the clips name it: the text, or `face:<id>` for a person."""
    from reko.faces.person import face_subject

    return face_subject(conf["face_id"]) if conf.get("face_id") else str(conf.get("subject") or "")


def _clip_scope(conf: dict) -> tuple:
    """What makes two clip requests the same: subject (as the clip DAG normalises it), videos and
    the cut's settings, defaults filled in (a person's threshold too)."""
    from reko.faces.similarity import DEFAULT_THRESHOLD
    from reko.index.docs import normalise

    defaults = {**CLIP_DEFAULTS, "face_threshold": DEFAULT_THRESHOLD}
    settings = tuple(float(conf.get(k) if conf.get(k) is not None else v) for k, v in defaults.items())
    videos = tuple(sorted({str(v) for v in conf.get("video_ids") or []}))
    return (normalise(_clip_subject(conf)), videos, settings)


async def _run_cutting(request: Request, conf: dict) -> dict | None:
    """A queued or running video_clips run asked for the same clips, if the caller may see one."""
    want = _clip_scope(conf)
    try:
        runs = await _airflow_call(
            request,
            "GET",
            f"/dags/{CLIPS_DAG_ID}/dagRuns",
            None,
            params={"state": ["queued", "running"], "limit": 100},
        )
    except HTTPException:  # may trigger but not list runs: no reuse, Airflow decides
        return None
    for run in runs.get("dag_runs") or []:
        if _clip_scope(run.get("conf") or {}) == want:
            return run
    return None


def _clips_done(client: Any, conf: dict) -> list[dict]:
    """The clips already cut for this request: every requested video (or every video where the
    subject is seen) has clips of it with the same padding and merge gap. Else nothing."""
    names = IndexNames.current()
    subject, videos, (padding_s, merge_gap_s, *_) = _clip_scope(conf)
    clips = [
        c
        for c in search.list_clips(client, names, subject=subject)
        if c.get("padding_ms") == round(padding_s * 1000)
        and c.get("merge_gap_ms") == round(merge_gap_s * 1000)
    ]
    if videos:
        clips = [c for c in clips if c["video_id"] in videos]
    wanted = set(videos) or search.videos_showing(client, names, subject)
    return clips if clips and wanted <= {c["video_id"] for c in clips} else []


def _airflow_api() -> str:
    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback="") or "http://127.0.0.1:8080"
    return base.rstrip("/") + "/api/v2"


def _caller_credential(request: Request) -> str:
    """The caller's own token (bearer header, else the UI's cookie), to act as them."""
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    token = request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    if not token:
        raise HTTPException(status_code=401, detail="Not authenticated")
    return token


def _airflow_client():
    """An HTTP client for Airflow's REST API (tests point it at the app in process)."""
    import httpx

    return httpx.AsyncClient(base_url=_airflow_api(), timeout=30)


async def _airflow_call(
    request: Request, method: str, path: str, body: dict | None = None, params: dict | None = None
) -> dict:
    headers = {"Authorization": f"Bearer {_caller_credential(request)}"}
    async with _airflow_client() as client:
        resp = await client.request(method, path, json=body, params=params, headers=headers)
    if resp.status_code >= 400:
        try:
            detail = resp.json().get("detail")
        except ValueError:
            detail = resp.text[:300]
        raise HTTPException(status_code=resp.status_code, detail=f"Airflow said: {detail}")
    return resp.json()


def _run_summary(run: dict) -> dict:
    keys = ("dag_id", "dag_run_id", "state", "run_type", "queued_at", "start_date", "end_date", "conf")
    return {k: run.get(k) for k in keys}


async def _clips_dag(request: Request) -> dict:
    """video_clips as the page needs it: paused or not, and where it is in Airflow's UI.

    `is_paused` is None when Airflow would not say (the caller may read runs but not the DAG).
    """
    try:
        dag = await _airflow_call(request, "GET", f"/dags/{CLIPS_DAG_ID}")
    except HTTPException:
        dag = {}
    return {
        "dag_id": CLIPS_DAG_ID,
        "is_paused": dag.get("is_paused"),
        "max_active_runs": dag.get("max_active_runs"),
        "url": f"/dags/{CLIPS_DAG_ID}",
    }


def _queued_s(run: dict) -> float | None:
    from datetime import UTC, datetime

    try:
        queued_at = datetime.fromisoformat(run.get("queued_at") or "")
    except ValueError:
        return None
    if queued_at.tzinfo is None:
        queued_at = queued_at.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - queued_at).total_seconds())


async def _with_waiting(request: Request, run: dict) -> dict:
    """The run summary, and for a run that has not started, why not and what the user can do.

    A manual run of a paused DAG is queued and never starts (no error anywhere), and a run can
    wait behind `max_active_runs` or a stopped scheduler: the page must not spin without a word.
    """
    summary = _run_summary(run)
    summary.update(waiting=None, queued_s=None, dag_paused=None, dag_url=f"/dags/{CLIPS_DAG_ID}")
    if run.get("state") != "queued":
        return summary
    dag = await _clips_dag(request)
    queued_s = _queued_s(run)
    summary.update(queued_s=queued_s, dag_paused=dag["is_paused"])
    if dag["is_paused"]:
        summary["waiting"] = f"{CLIPS_DAG_ID} is paused: unpause it in Airflow, and this run starts."
    elif queued_s is not None and queued_s > QUEUED_TOO_LONG_S:
        waited = f"Queued for {round(queued_s)} s"
        running = await _airflow_call(
            request, "GET", f"/dags/{CLIPS_DAG_ID}/dagRuns", None, params={"state": "running", "limit": 1}
        )
        busy, limit = running.get("total_entries") or 0, dag["max_active_runs"]
        if limit and busy >= limit:
            summary["waiting"] = (
                f"{waited}: {busy} other {CLIPS_DAG_ID} runs are running (max_active_runs {limit}); "
                "it starts when one ends."
            )
        else:
            summary["waiting"] = (
                f"{waited}: Airflow's scheduler has not started it. Check in Airflow that the "
                "scheduler is running and that no pool or concurrency limit holds the run."
            )
    return summary


def _may(user: Any, method: str, dag_id: str, entity: Any = None) -> bool:
    """Whether Airflow's auth manager lets `user` do `method` on the DAG `dag_id` (as
    `requires_access_dag` does, team included, but for a DAG the route names, not the request)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
    from airflow.models.dag import DagModel

    details = DagDetails(id=dag_id, team_name=DagModel.get_team_name(dag_id))
    return get_auth_manager().is_authorized_dag(
        method=method, access_entity=entity, details=details, user=user
    )


def _authorize(user: Any, method: str, dag_id: str, entity: Any = None) -> None:
    """403 unless `_may`."""
    if not _may(user, method, dag_id, entity):
        verb = {"GET": "read"}.get(method, "trigger" if method == "POST" else "change")
        raise HTTPException(status_code=403, detail=f"Forbidden: you may not {verb} the DAG {dag_id}")


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _origin_of(url: str) -> str | None:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else None


def refuse_cross_site(request: Request) -> None:
    """403 for a state-changing request a browser sent from another site (CSRF).

    Not left to FastAPI's JSON content-type check and the absence of CORS: a browser's
    `Sec-Fetch-Site` must say same-origin (or none: typed by the user), and an `Origin`, when sent,
    must be this server's (as the request names it, or `[api] base_url`). Clients that are not
    browsers send neither and carry their own token, so they pass.
    """
    if request.method in SAFE_METHODS:
        return
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site.lower() not in ("same-origin", "none"):
        raise HTTPException(
            status_code=403, detail=f"Cross-site request refused (Sec-Fetch-Site: {fetch_site})"
        )
    origin = request.headers.get("origin")
    if origin is None:
        return
    from airflow.configuration import conf

    own = {_origin_of(str(request.base_url)), _origin_of(conf.get("api", "base_url", fallback="") or "")}
    if origin.lower() not in own - {None}:
        raise HTTPException(status_code=403, detail=f"Cross-site request refused (Origin: {origin[:100]})")


def _is_clip_key(key: str) -> bool:
    """Clips are cut by video_clips under `<video_id>/clips/`; frames are video_analysis' own."""
    return key.split("/")[1:2] == ["clips"]


def build_router() -> APIRouter:
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import get_user, requires_authenticated
    from opensearchpy.exceptions import RequestError

    def may(method: str, dag_id: str, entity: DagAccessEntity | None = None) -> Any:
        def check(user: Any = Depends(get_user)) -> None:  # noqa: B008 (annotations are strings here)
            _authorize(user, method, dag_id, entity)

        return Depends(check)

    read_analysis = may("GET", ANALYSIS_DAG_ID)
    read_clips = may("GET", CLIPS_DAG_ID)
    read_clip_runs = may("GET", CLIPS_DAG_ID, DagAccessEntity.RUN)
    trigger_clips = may("POST", CLIPS_DAG_ID, DagAccessEntity.RUN)  # what Airflow's trigger route checks

    def media_access(request: Request, user: Any = Depends(get_user)) -> None:  # noqa: B008
        _authorize(user, "GET", ANALYSIS_DAG_ID)
        if _is_clip_key(request.path_params.get("key", "")):
            _authorize(user, "GET", CLIPS_DAG_ID)

    # Same-site for what changes state, authenticated; each route then checks the DAG whose data
    # it serves (never `?dag_id=`).
    router = APIRouter(dependencies=[Depends(refuse_cross_site), Depends(requires_authenticated())])

    @router.get("/", response_class=HTMLResponse, include_in_schema=False, dependencies=[read_analysis])
    def page() -> Response:
        html = (ASSET_DIR / "index.html").read_text(encoding="utf-8")
        csp = content_security_policy(storage_root())
        return HTMLResponse(html, headers={"Content-Security-Policy": csp, "Cache-Control": "no-store"})

    @router.get("/static/{name}", include_in_schema=False, dependencies=[read_analysis])
    def asset(name: str) -> Response:
        if name not in ASSETS:
            raise HTTPException(status_code=404, detail="no such asset")
        return FileResponse(ASSET_DIR / name, media_type=ASSETS[name], headers={"Cache-Control": "no-cache"})

    @router.get("/api/videos", dependencies=[read_analysis])
    def videos(
        request: Request, client: OpenSearchDep, dag_id: Annotated[str | None, Query(max_length=250)] = None
    ):
        root = storage_root()
        docs = search.list_videos(client, IndexNames.current(), dag_id=dag_id)
        out = []
        for doc in docs:
            doc["thumbnail_url"] = _media_url(request, root, search.thumbnail_uri(doc))
            out.append(doc)
        return {"videos": out}

    @router.get("/api/search", dependencies=[read_analysis])
    def search_route(
        request: Request,
        client: OpenSearchDep,
        text: Annotated[str, Query(max_length=search.MAX_TEXT_LENGTH)],
        min_confidence: Annotated[float, Query(ge=0, le=100)] = 80,
        max_confidence: Annotated[float, Query(ge=0, le=100)] = 100,
        video_id: Annotated[str | None, Query(max_length=250)] = None,
        size: Annotated[int, Query(ge=1, le=search.MAX_PAGE_SIZE)] = 50,
        after: Annotated[str | None, Query(max_length=2000)] = None,
    ):
        try:
            result = search.search_frames(
                client,
                IndexNames.current(),
                text=text,
                min_confidence=min_confidence,
                max_confidence=max_confidence,
                video_id=video_id or None,
                size=size,
                after=after or None,
            )
        except search.SearchInputError as exc:
            raise _bad_input(exc) from None
        except RequestError:  # a cursor OpenSearch refuses (400) is the caller's, not a server error
            if after:
                raise _bad_input(search.SearchInputError(search.BAD_CURSOR)) from None
            raise
        return _with_media_urls(request, result)

    @router.get("/api/suggest", dependencies=[read_analysis])
    def suggest(client: OpenSearchDep, text: Annotated[str, Query(max_length=search.MAX_TEXT_LENGTH)]):
        """Bibs a partial number may be (what a typo or a half-hidden bib leaves of it)."""
        return {"text": text, "suggestions": search.suggest_numbers(client, IndexNames.current(), text)}

    @router.get("/api/export", dependencies=[read_analysis])
    def export(
        request: Request,
        client: OpenSearchDep,
        text: Annotated[str, Query(max_length=search.MAX_TEXT_LENGTH)],
        min_confidence: Annotated[float, Query(ge=0, le=100)] = 80,
        max_confidence: Annotated[float, Query(ge=0, le=100)] = 100,
        video_id: Annotated[str | None, Query(max_length=250)] = None,
        format: Annotated[str, Query(pattern="^(csv|json)$")] = "csv",
    ) -> Response:
        """Every hit of a search (video, time, frame, text, confidence, box) as a CSV or JSON file,
        for race organisers' tools; frame URLs are absolute and need the same session or token."""
        try:
            rows, truncated = search.export_hits(
                client,
                IndexNames.current(),
                text=text,
                min_confidence=min_confidence,
                max_confidence=max_confidence,
                video_id=video_id or None,
            )
        except search.SearchInputError as exc:
            raise _bad_input(exc) from None
        root, origin = storage_root(), str(request.base_url).rstrip("/")
        for row in rows:
            url = _media_url(request, root, row.pop("frame_uri", None))
            row["frame_url"] = origin + url if url else None
        stem = "".join(c if c.isalnum() else "-" for c in text.strip())[:40].strip("-") or "search"
        headers = {
            "Content-Disposition": f'attachment; filename="reko-{stem}.{format}"',
            "X-Reko-Truncated": "true" if truncated else "false",
            "Cache-Control": "no-store",
        }
        if format == "json":
            body = {
                "text": text,
                "min_confidence": min_confidence,
                "max_confidence": max_confidence,
                "video_id": video_id or None,
                "truncated": truncated,
                "hits": [{k: row.get(k) for k in search.EXPORT_COLUMNS} for row in rows],
            }
            return JSONResponse(body, headers=headers)
        return Response(search.to_csv(rows), media_type="text/csv; charset=utf-8", headers=headers)

    @router.get("/api/clips", dependencies=[read_clips])
    def clips(
        request: Request,
        client: OpenSearchDep,
        subject: Annotated[str | None, Query(max_length=256)] = None,
        video_id: Annotated[str | None, Query(max_length=250)] = None,
        run_id: Annotated[str | None, Query(max_length=250)] = None,
    ):
        root = storage_root()
        docs = search.list_clips(
            client, IndexNames.current(), subject=subject or None, video_id=video_id or None, run_id=run_id
        )
        for doc in docs:
            doc["clip_url"] = _media_url(request, root, doc.get("clip_uri"))
        return {"clips": docs}

    @router.post("/api/clips", status_code=201, dependencies=[trigger_clips])
    async def request_clip(
        request: Request,
        client: OpenSearchDep,
        body: Annotated[ClipRequest, Body()],
        response: Response,
        user: Any = Depends(get_user),  # noqa: B008
    ):
        """Trigger video_clips, unless the same clips exist (200, `reused: "clips"`, the clips) or
        a run is cutting them (200, `reused: "run"`, that run): a second click or a second user
        does not cut them twice. `force` cuts again."""
        from reko.faces.person import face_of_subject

        subject = body.subject.strip()
        face_id = (body.face_id or "").strip() or face_of_subject(subject)
        conf: dict[str, Any] = ({"subject": "", "face_id": face_id} if face_id else {"subject": subject}) | {
            "video_ids": body.video_ids
        }
        for key in ("padding_s", "merge_gap_s", "min_confidence", "face_threshold"):
            if getattr(body, key) is not None and (face_id or key != "face_threshold"):
                conf[key] = getattr(body, key)
        if not conf["subject"] and not face_id:
            raise HTTPException(status_code=400, detail="subject (or a face_id) is required")
        bibs = [] if face_id else search.bibs_of(search.normalise(conf["subject"]))
        if bibs:  # the search finds several bibs at once; video_clips cuts one subject a run
            raise HTTPException(
                status_code=400,
                detail=f"request clips of one bib at a time ({' or '.join(bibs[:3])}): each is its own run",
            )
        # the clips are video_clips' data: shown instead of a new run only to who may read them
        if not body.force and _may(user, "GET", CLIPS_DAG_ID):
            done = await asyncio.to_thread(_clips_done, client, conf)
            if done:
                response.status_code = 200
                root = storage_root()
                for doc in done:
                    doc["clip_url"] = _media_url(request, root, doc.get("clip_uri"))
                return {"reused": "clips", "clips": done, "dag_run_id": None, "state": "success"}
            running = await _run_cutting(request, conf)
            if running:
                response.status_code = 200
                return {**await _with_waiting(request, running), "reused": "run"}
        run = await _airflow_call(
            request, "POST", f"/dags/{CLIPS_DAG_ID}/dagRuns", {"logical_date": None, "conf": conf}
        )
        return {**await _with_waiting(request, run), "reused": None}

    @router.get("/api/clips/runs/{run_id}", dependencies=[read_clip_runs])
    async def clip_run(request: Request, run_id: str):
        run = await _airflow_call(request, "GET", f"/dags/{CLIPS_DAG_ID}/dagRuns/{quote(run_id, safe='')}")
        return await _with_waiting(request, run)

    @router.get("/api/clips/dag", dependencies=[read_clips])
    async def clips_dag(request: Request):
        """Whether video_clips is paused, so the page can say so before a request waits forever."""
        return await _clips_dag(request)

    @router.get("/video/{video_id}", name="video", dependencies=[read_analysis])
    async def video(client: OpenSearchDep, video_id: Annotated[str, Path(max_length=250)]) -> Response:
        """The video itself, to play from a moment: the file the index's video document names
        (a proxy when it has one, else the source), never a path or URI from the request. Local
        files are streamed with HTTP ranges (206), so the browser seeks without the whole file."""
        from opensearchpy.exceptions import NotFoundError, RequestError

        try:
            doc = await asyncio.to_thread(
                client.get, index=IndexNames.current().videos, id=video_id, _source=VIDEO_URI_FIELDS
            )
        except (NotFoundError, RequestError):  # an id OpenSearch refuses names no video either
            raise HTTPException(status_code=404, detail="no such video") from None
        src = doc.get("_source") or {}
        try:
            found = await asyncio.to_thread(source_video, src.get("proxy_uri") or src.get("source_uri"))
        except MediaPathError as exc:
            raise HTTPException(status_code=404, detail=f"cannot play this video: {exc}") from None
        except FileNotFoundError:
            raise HTTPException(status_code=404, detail="the video's file is gone") from None
        if found.url:
            return RedirectResponse(
                found.url, status_code=307, headers={"Cache-Control": "private, max-age=600"}
            )
        return FileResponse(
            found.path, media_type=found.media_type, headers={"Cache-Control": "private, max-age=3600"}
        )

    @router.post("/api/faces/search", dependencies=[read_analysis])
    async def faces_search(
        request: Request,
        client: OpenSearchDep,
        threshold: Annotated[float | None, Query(ge=0, le=100)] = None,
        video_id: Annotated[list[str] | None, Query(max_length=1000)] = None,
        max_matches: Annotated[int, Query(ge=1, le=1000)] = 1000,
    ):
        """Find a person by photo: the body is the photo itself (JPEG or PNG bytes). It is read into
        memory, embedded and dropped: never stored, never logged (nor are its matches). Each video
        comes with the person's face tracks and the runner passes linked to them, and
        `person_face` is the face id a clip request names the person by."""
        from reko.analysis.base import RetryableAnalysisError
        from reko.faces.person import describe
        from reko.faces.search import MAX_PHOTO_BYTES, find_person

        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in PHOTO_TYPES:
            raise HTTPException(
                status_code=415,
                detail="send the photo as the request body with Content-Type image/jpeg or image/png,"
                f" not {kind or 'none'!r}",
            )
        photo = await _read_capped(request, MAX_PHOTO_BYTES)
        try:
            result = await asyncio.to_thread(
                find_person,
                client,
                IndexNames.current(),
                photo,
                threshold=threshold,
                video_ids=video_id or None,
                max_matches=max_matches,
            )
        except ValueError as exc:  # not an image, no face in it, a bad threshold: the caller's
            raise _bad_input(exc) from None
        except RetryableAnalysisError as exc:  # Rekognition throttled or failed: try again later
            raise HTTPException(status_code=503, detail=str(exc), headers={"Retry-After": "5"}) from None
        finally:
            del photo
        result = await asyncio.to_thread(describe, client, IndexNames.current(), result)
        root = storage_root()
        for video in result["videos"]:
            for frame in video["frames"]:
                frame["frame_url"] = _media_url(request, root, frame.pop("frame_uri", None))
        return result

    @router.get("/media/{key:path}", name="media", dependencies=[Depends(media_access)])
    async def media(key: str) -> Response:
        root = storage_root()
        try:
            if root.scheme == "s3":
                url = await asyncio.to_thread(presigned_url, root, key)
                return RedirectResponse(
                    url, status_code=307, headers={"Cache-Control": "private, max-age=600"}
                )
            path = local_file(root, key)
        except MediaPathError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        except FileNotFoundError:
            raise HTTPException(status_code=404, detail="no such frame or clip") from None
        return FileResponse(
            path, media_type=media_type(key), headers={"Cache-Control": "private, max-age=3600"}
        )

    return router


def create_app() -> FastAPI:
    app = _App(title="reko video search", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.include_router(build_router())

    @app.exception_handler(HTTPException)
    async def to_login(request: Request, exc: HTTPException):
        """A browser opening a page without a session goes to Airflow's login, then comes back."""
        wants_page = request.method == "GET" and "text/html" in request.headers.get("accept", "")
        path = request.url.path
        if (
            exc.status_code == 401
            and wants_page
            and not any(p in path for p in ("/api/", "/media/", "/video/"))
        ):
            from airflow.api_fastapi.app import get_auth_manager

            target = path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(get_auth_manager().get_url_login(next_url=target), status_code=303)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    return app
