"""Start a real single-node OpenSearch for local development and tests.

Why: the project wants a real OpenSearch (real mappings, painless, delete-by-query) without
Docker or a tarball download. ``include/opensearch/launcher`` is a tiny Maven project that runs
OpenSearch 2.19.x straight from Maven Central jars; this module builds it on demand and starts,
waits for and stops the node. Standard library only, so it works before any extras are installed.

CLI::

    python -m reko.localdev.opensearch --port 9200 --home .data/opensearch
    python -m reko.localdev.opensearch --build-only
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

#: Repository root: plugins/reko/localdev/opensearch.py -> parents[3].
REPO_ROOT: Path = Path(__file__).resolve().parents[3]
#: The Maven project holding the Java launcher.
LAUNCHER_DIR: Path = REPO_ROOT / "include" / "opensearch" / "launcher"
LAUNCHER_JAR: Path = LAUNCHER_DIR / "target" / "launcher.jar"
LIB_DIR: Path = LAUNCHER_DIR / "target" / "lib"
MAIN_CLASS = "dev.reko.opensearch.RekoNode"
#: Printed by RekoNode once *its* HTTP port is bound (guards against another server on the port).
STARTED_MARKER = "reko-opensearch: started"

#: JVM flags taken from the distribution's jvm.options that matter outside Bootstrap.
JVM_FLAGS: tuple[str, ...] = (
    "-XX:+UseG1GC",
    "-Dfile.encoding=UTF-8",
    # Same date/locale behaviour as the packaged distribution on JDK 17.
    "-Djava.locale.providers=SPI,COMPAT",
    "-Xss1m",
    "-XX:-OmitStackTraceInFastThrow",
    "-Dio.netty.noUnsafe=true",
    "-Dio.netty.noKeySetOptimization=true",
    "-Dio.netty.recycler.maxCapacityPerThread=0",
    "-Dio.netty.allocator.numDirectArenas=0",
    # Our shutdown hook closes the node and logs; log4j must not shut down first.
    "-Dlog4j.shutdownHookEnabled=false",
    "-Dlog4j2.disable.jmx=true",
    "-Djava.awt.headless=true",
)


class NodeProcess(subprocess.Popen[bytes]):
    """A running node; remembers where its console output goes (for error messages)."""

    log_path: Path
    #: Size of the (appended) log before this start: only later output belongs to this run.
    log_offset: int = 0


def _jars_present() -> bool:
    """True when the launcher jar, the OpenSearch server jar and the k-NN plugin are all built
    (a launcher built before k-NN joined it is rebuilt)."""
    return (
        LAUNCHER_JAR.is_file()
        and any(LIB_DIR.glob("opensearch-2.*.jar"))
        and any(LIB_DIR.glob("opensearch-knn-*.jar"))
    )


def build_launcher(force: bool = False) -> Path:
    """Build the launcher with Maven unless its jars already exist; return the launcher dir.

    Maven is only needed once per checkout (jars land in ``target/``); later starts are offline.
    """
    if _jars_present() and not force:
        return LAUNCHER_DIR
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError("Maven ('mvn') is required to build the OpenSearch launcher")
    cmd = [
        mvn,
        "-q",
        "-B",
        "-Dstyle.color=never",
        "-f",
        str(LAUNCHER_DIR / "pom.xml"),
        "package",
        "dependency:copy-dependencies",
    ]
    print(f"reko: building OpenSearch launcher: {' '.join(cmd)}", file=sys.stderr, flush=True)
    started = time.monotonic()
    subprocess.run(cmd, check=True)
    if not _jars_present():
        raise RuntimeError(f"Maven build finished but {LAUNCHER_JAR} or {LIB_DIR} is missing")
    print(f"reko: launcher built in {time.monotonic() - started:.1f}s", file=sys.stderr, flush=True)
    return LAUNCHER_DIR


def free_port() -> int:
    """Return a currently free TCP port on 127.0.0.1 (racy by nature, fine for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def java_command(http_port: int, home: Path, heap: str = "512m", parent_pid: int | None = None) -> list[str]:
    """The exact java command line that runs the node (exposed for logging and debugging).

    With ``parent_pid`` the JVM exits when that process ends, so a killed test run leaves no
    orphaned node holding the port and the data lock.
    """
    java = os.environ.get("JAVA_HOME")
    java_bin = str(Path(java) / "bin" / "java") if java else (shutil.which("java") or "java")
    classpath = f"{LAUNCHER_JAR}{os.pathsep}{LIB_DIR / '*'}"
    return [
        java_bin,
        f"-Xms{heap}",
        f"-Xmx{heap}",
        *JVM_FLAGS,
        "-cp",
        classpath,
        MAIN_CLASS,
        "--http-port",
        str(http_port),
        "--home",
        str(home),
        *(["--exit-with-parent", str(parent_pid)] if parent_pid else []),
    ]


def start_node(http_port: int, home: Path, heap: str = "512m", log_file: Path | None = None) -> NodeProcess:
    """Start the node in the background, bound to 127.0.0.1 only; data goes to ``home/data``.

    Output goes to ``log_file`` (default ``home/logs/console.log``) so a failed start can be
    explained by :func:`wait_for_health`. The caller owns the process and should stop it with
    :func:`stop_node`; if the caller dies anyway, the JVM exits on its own (``--exit-with-parent``).
    """
    if not _jars_present():
        raise RuntimeError("OpenSearch launcher is not built; call build_launcher() first")
    if not _port_is_free(http_port):
        # Otherwise wait_for_health could happily talk to whatever already listens there.
        raise RuntimeError(f"port 127.0.0.1:{http_port} is already in use")
    home = Path(home).resolve()
    (home / "logs").mkdir(parents=True, exist_ok=True)
    log_path = Path(log_file) if log_file is not None else home / "logs" / "console.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        offset = log.seek(0, os.SEEK_END)
        proc = NodeProcess(
            java_command(http_port, home, heap, parent_pid=os.getpid()),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(home),
        )
    proc.log_path = log_path
    proc.log_offset = offset
    return proc


def _tail(path: Path | None, lines: int = 40) -> str:
    """Last lines of a log file, or a note when there is none."""
    if path is None or not path.is_file():
        return "(no log file)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def _log_has(path: Path, needle: str, offset: int = 0) -> bool:
    """True when the log file exists and contains ``needle`` after byte ``offset``."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return needle.encode() in fh.read()
    except OSError:
        return False


def wait_for_health(
    url: str,
    timeout_s: float = 120,
    proc: subprocess.Popen[bytes] | None = None,
    log_file: Path | None = None,
) -> None:
    """Block until the cluster is at least yellow; raise with the log tail if the node died.

    ``proc``/``log_file`` are optional; with them a crashed JVM is reported at once instead of
    after the full timeout, and a healthy answer only counts once our launcher logged that it
    started (so a different server already on the port cannot fool us).
    """
    health = url.rstrip("/") + "/_cluster/health?wait_for_status=yellow&timeout=1s"
    if log_file is None and proc is not None:
        log_file = getattr(proc, "log_path", None)
    log_offset = int(getattr(proc, "log_offset", 0))
    deadline = time.monotonic() + timeout_s
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"OpenSearch exited with code {proc.returncode} before becoming healthy.\n"
                f"--- last lines of {log_file} ---\n{_tail(log_file)}"
            )
        try:
            with urllib.request.urlopen(health, timeout=5) as resp:
                body = json.loads(resp.read())
                if body.get("status") in ("yellow", "green"):
                    if proc is None or log_file is None or _log_has(log_file, STARTED_MARKER, log_offset):
                        return
                    last_error = "healthy answer, but our node has not logged its start yet"
                last_error = f"status={body.get('status')}"
        except urllib.error.HTTPError as exc:  # 408 while the status is still red
            last_error = f"HTTP {exc.code}"
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            last_error = str(exc)
        time.sleep(0.5)
    raise TimeoutError(
        f"OpenSearch at {url} not yellow after {timeout_s:.0f}s ({last_error}).\n"
        f"--- last lines of {log_file} ---\n{_tail(log_file)}"
    )


def stop_node(proc: subprocess.Popen[bytes], timeout_s: float = 30) -> int:
    """SIGTERM the JVM (its shutdown hook closes the node cleanly); SIGKILL after the timeout."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)


@contextmanager
def running_node(heap: str = "512m") -> Iterator[str]:
    """OPENSEARCH_URL when set, else a node of our own on a free port for as long as the caller
    needs it (the benchmarks' node: each run measures on a node it started, or the one it is given)."""
    if os.environ.get("OPENSEARCH_URL"):
        yield os.environ["OPENSEARCH_URL"]
        return
    import tempfile

    build_launcher()
    with tempfile.TemporaryDirectory(prefix="reko-opensearch-") as tmp:
        port = free_port()
        node = start_node(port, Path(tmp) / "opensearch", heap=heap, log_file=Path(tmp) / "opensearch.log")
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for_health(url, timeout_s=180, proc=node)
            yield url
        finally:
            stop_node(node)


def main(argv: list[str] | None = None) -> int:
    """CLI: build if needed, start, wait for health, print the URL, stay in the foreground."""
    parser = argparse.ArgumentParser(
        prog="python -m reko.localdev.opensearch",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, default=9200, help="HTTP port (0 = pick a free one)")
    parser.add_argument(
        "--home",
        type=Path,
        default=REPO_ROOT / ".data" / "opensearch",
        help="node home; data is kept in HOME/data",
    )
    parser.add_argument("--heap", default="512m", help="JVM heap, e.g. 512m or 1g")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for health")
    parser.add_argument("--build-only", action="store_true", help="build the launcher and exit")
    parser.add_argument("--rebuild", action="store_true", help="rebuild even if jars exist")
    args = parser.parse_args(argv)

    build_launcher(force=args.rebuild)
    if args.build_only:
        print(LAUNCHER_DIR / "target")
        return 0

    port = args.port or free_port()
    home = args.home.resolve()
    proc = start_node(port, home, heap=args.heap)
    url = f"http://127.0.0.1:{port}"

    stopping = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        # Let the JVM's shutdown hook close the node; we then exit with its code.
        nonlocal stopping
        stopping = True
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        wait_for_health(url, timeout_s=args.timeout, proc=proc)
    except BaseException:
        stop_node(proc)
        raise
    print(
        f"OpenSearch ready: {url} (pid {proc.pid}, home {home}, log {proc.log_path})",
        flush=True,
    )
    code = int(proc.wait())
    # A JVM stopped by SIGTERM/SIGINT exits 143/130 after its shutdown hook: that is a clean stop.
    if stopping and code in (0, 130, 143, -signal.SIGTERM, -signal.SIGINT):
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
