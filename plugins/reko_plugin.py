"""reko's Airflow plugin: the video search page, inside the Airflow UI.

Every Airflow component imports this file, so it stays light: the FastAPI app (OpenSearch, the
api-server's security module) is built on the first request the api-server routes to `/reko`.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from reko import listeners as run_note_listener

URL_PREFIX = "/reko"


class RekoSearchApp:
    """ASGI app that builds `reko.web.app.create_app()` on first use (lifespan is not forwarded)."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self._app is None:
            from reko.web.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


class RekoPlugin(AirflowPlugin):
    """Loaded by every Airflow component from the plugins folder."""

    name = "reko"
    listeners = [run_note_listener]  # the run summary into each video_analysis run's note
    fastapi_apps = [{"app": RekoSearchApp(), "url_prefix": URL_PREFIX, "name": "reko video search"}]
    external_views = [
        {
            "name": "Videos",  # one word, as Airflow's own nav items: a longer label is cut
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "video-search",
            "icon": f"{URL_PREFIX}/static/favicon.svg",
        },
        {
            # a tab on every DAG page; the page lists the videos that DAG analysed (or says none)
            "name": "Videos",
            "href": f"{URL_PREFIX}/?view=videos&dag_id={{DAG_ID}}",
            "destination": "dag",
            "url_route": "reko-dag-videos",
        },
    ]
