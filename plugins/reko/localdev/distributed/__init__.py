"""Airflow's distributed engine on one machine: CeleryExecutor, Debian's redis-server as the broker,
Debian's PostgreSQL as the metadata DB, and workers that share nothing but S3 (moto on loopback).

Every server binds 127.0.0.1 on a free port, with a random password kept in a 0600 file.
"""
