"""reko: turn video into searchable frames with Apache Airflow."""

__version__ = "0.1.0"
