"""reko's Airflow plugin: registers reko with Airflow (the search page arrives with its own issue)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


class RekoPlugin(AirflowPlugin):
    """Loaded by every Airflow component from the plugins folder."""

    name = "reko"
