"""An auth manager that grants DAG access per DAG, as FAB, Keycloak or a custom manager can.

Airflow's simple auth manager only knows roles (every DAG or none), so it cannot show a check
that reads the wrong DAG. Users named in `GRANTS` get exactly the methods listed for each DAG
(and no "all DAGs" permission); everyone else is the simple auth manager's as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.base_auth_manager import ResourceMethod
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

PATH = f"{__name__}.PerDagAuthManager"
GRANTS: dict[str, dict[str, set[str]]] = {
    "hello_reader": {"hello_dag": {"GET"}},
    "analysis_reader": {"video_analysis": {"GET"}},
    "clip_reader": {"video_analysis": {"GET"}, "video_clips": {"GET"}},
    "clip_requester": {"video_analysis": {"GET"}, "video_clips": {"GET", "POST"}},
    "clip_trigger_only": {"video_analysis": {"GET"}, "video_clips": {"POST"}},
}


class PerDagAuthManager(SimpleAuthManager):
    """The simple auth manager, with per-DAG grants for the users in `GRANTS`."""

    def is_authorized_dag(
        self,
        *,
        method: ResourceMethod,
        user: SimpleAuthManagerUser,
        access_entity: DagAccessEntity | None = None,
        details: DagDetails | None = None,
    ) -> bool:
        grants = GRANTS.get(user.username)
        if grants is None:
            return super().is_authorized_dag(
                method=method, user=user, access_entity=access_entity, details=details
            )
        if details is None or not details.id:  # "any DAG": these users have no such permission
            return False
        return method in grants.get(details.id, set())
