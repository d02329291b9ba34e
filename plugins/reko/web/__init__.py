"""reko's search page: a FastAPI app served by the Airflow api-server through `reko_plugin.py`."""
