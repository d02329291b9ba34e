"""Debian's PostgreSQL and redis-server, each a throw-away instance on a free loopback port.

PostgreSQL refuses to run as root: as root the cluster is created and run as the `postgres` user,
in a folder of its own under the system temp folder (a pytest tmp_path sits under a 0700 folder
that user cannot enter). Nothing is persisted: both are for one deployment's lifetime.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reko.localdev.opensearch import free_port, stop_node

DB_USER = "airflow"
DB_NAME = "airflow"


def _postgres_bin(name: str) -> str:
    """A PostgreSQL server binary (Debian keeps them under /usr/lib/postgresql/<major>/bin)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    if not found[-1]:
        raise FileNotFoundError(f"{name} not found: apt-get install postgresql")
    return found[-1]


def _as_postgres(cmd: list[str]) -> list[str]:
    """`cmd` run as the `postgres` user when we are root (the server refuses root)."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _wait_for_port(port: int, proc: subprocess.Popen, what: str, log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}; see {log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{what} not listening on 127.0.0.1:{port} after {timeout_s}s; see {log}")


@contextmanager
def postgres_server(max_connections: int = 300) -> Iterator[str]:
    """The SQLAlchemy URL (psycopg2) of a fresh PostgreSQL database owned by `airflow`.

    Tuned for a throw-away test cluster (no fsync): never a setting for data you keep.
    """
    folder = Path(tempfile.mkdtemp(prefix="reko-postgres-"))
    password = secrets.token_urlsafe(18)
    try:
        if os.geteuid() == 0:
            ids = pwd.getpwnam("postgres")
            os.chown(folder, ids.pw_uid, ids.pw_gid)
        pwfile = folder / "pwfile"
        pwfile.write_text(password)
        pwfile.chmod(0o600)
        if os.geteuid() == 0:
            os.chown(pwfile, ids.pw_uid, ids.pw_gid)
        data, log = folder / "data", folder / "postgres.log"
        initdb = [_postgres_bin("initdb"), "-D", str(data), "-U", DB_USER, f"--pwfile={pwfile}"]
        initdb += ["--auth=scram-sha-256", "-E", "UTF8", "--no-sync"]
        subprocess.run(_as_postgres(initdb), check=True, capture_output=True, cwd=folder)
        pwfile.unlink()
        port = free_port()
        server = [_postgres_bin("postgres"), "-D", str(data), "-p", str(port), "-k", str(folder)]
        for setting in (
            "listen_addresses=127.0.0.1",
            f"max_connections={max_connections}",
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
        ):
            server += ["-c", setting]
        with log.open("ab") as out:
            proc = subprocess.Popen(
                _as_postgres(server), stdout=out, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True
            )
        try:
            _wait_for_port(port, proc, "postgres", log)
            url = f"postgresql+psycopg2://{DB_USER}:{password}@127.0.0.1:{port}/postgres"
            _create_database(url)
            yield url.rsplit("/", 1)[0] + f"/{DB_NAME}"
        finally:
            stop_node(proc)  # SIGTERM, SIGKILL after the timeout: any server
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _create_database(admin_url: str, timeout_s: float = 30) -> None:
    """CREATE DATABASE airflow, once the server accepts logins (it listens before it is ready)."""
    import psycopg2

    dsn = admin_url.replace("postgresql+psycopg2://", "postgresql://")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn = psycopg2.connect(dsn)
            break
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {DB_NAME} OWNER {DB_USER}")
    finally:
        conn.close()


@contextmanager
def redis_server() -> Iterator[str]:
    """The broker URL of a fresh redis-server: loopback, password required, no persistence."""
    folder = Path(tempfile.mkdtemp(prefix="reko-redis-"))
    password = secrets.token_urlsafe(18)
    port = free_port()
    conf, log = folder / "redis.conf", folder / "redis.log"
    conf.write_text(
        f"bind 127.0.0.1\nport {port}\nprotected-mode yes\nrequirepass {password}\n"
        f'save ""\nappendonly no\ndir {folder}\nlogfile {log}\n'
    )
    conf.chmod(0o600)  # the password is in it: not on the command line, where `ps` shows it
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        raise FileNotFoundError("redis-server not found: apt-get install redis-server")
    proc = subprocess.Popen([binary, str(conf)], cwd=folder, start_new_session=True)
    try:
        _wait_for_port(port, proc, "redis-server", log)
        yield f"redis://:{password}@127.0.0.1:{port}/0"
    finally:
        stop_node(proc)  # SIGTERM, SIGKILL after the timeout: any server
        shutil.rmtree(folder, ignore_errors=True)
