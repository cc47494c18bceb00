"""Child processes of the dev stack and of the tests: each in its own process group, logging
to a file, waited for until ready, stopped by PID."""
import errno
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import requests

REPO = Path(__file__).resolve().parents[2]
VAR = Path(os.environ.get("HOCVU_VAR_DIR") or REPO / "var")
BIN = Path(sys.executable).parent


class StartError(RuntimeError):
    """A part of the stack exited or never became ready; the message ends with its log."""


# ports this process handed out: a platform asks for twenty before it starts any, and one
# asked for twice would fail the second part's start (seen in CI: a store's eaddrinuse)
_HANDED_OUT: set[int] = set()
# `make test` runs two pytest processes side by side (hocvu_tools.testrun): each takes the
# ports of its own share, "k/n" being those equal to k modulo n, so they never pick alike
PORT_SHARE = "HOCVU_PORT_SHARE"


def free_port() -> int:
    """A port nothing listens on, outside the kernel's range for outgoing connections, not
    handed out before by this process, and of this process's share (PORT_SHARE).

    A server starts seconds after its port is chosen; a port from the ephemeral range can be
    taken meanwhile by any process's outgoing connection (seen in CI: a test's RabbitMQ node
    failing with eaddrinuse)."""
    low, high = ephemeral_port_range()
    share, shares = _port_share()
    candidates = [port for port in range(10_000, 65_536) if not low <= port <= high
                  and port % shares == share and port not in _HANDED_OUT]
    for port in random.sample(candidates, min(200, len(candidates))):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise StartError("no free port outside the ephemeral range")


def _port_share() -> tuple[int, int]:
    share, _, shares = os.environ.get(PORT_SHARE, "0/1").partition("/")
    return int(share), int(shares)


def ephemeral_port_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32_768, 60_999  # Linux's default


def port_holder(port: int, host: str = "127.0.0.1") -> str | None:
    """None if a server could listen on `port`, else who holds it, for an error message."""
    with socket.socket() as sock:
        # as the servers do: a port whose old connections are in TIME_WAIT is still free
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            return None
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
    try:
        for connection in psutil.net_connections(kind="tcp"):
            if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port \
                    and connection.pid:
                return f"pid {connection.pid} ({' '.join(psutil.Process(connection.pid).cmdline())})"
    except (psutil.AccessDenied, psutil.NoSuchProcess):
        pass
    return "another process"


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def wait_gone(processes, timeout: float) -> list[psutil.Process]:
    """Wait until `processes` have exited; return those still running after `timeout`.
    (psutil.wait_procs would do, but it needs select.poll, which eventlet's monkey-patching,
    as in the test process, removes.)"""
    deadline = time.monotonic() + timeout
    running = list(processes)
    while True:
        running = [process for process in running if _running(process)]
        if not running or time.monotonic() >= deadline:
            return running
        time.sleep(0.05)


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class Process:
    """A child process in its own process group (so a Ctrl-C in the launcher's terminal does
    not reach it before the launcher decides the order), logging to `<log_dir>/<name>.log`."""

    def __init__(self, name: str, command: list[str], log_dir: Path, env: dict | None = None):
        self.name = name
        self.command = [str(part) for part in command]
        self.log_path = Path(log_dir) / f"{name}.log"
        self.env = {**os.environ, **(env or {})}
        self.popen: subprocess.Popen | None = None
        self._family: list[psutil.Process] = []
        self._started_at = 0.0

    def start(self) -> "Process":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._started_at = time.time()
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(self.command, cwd=REPO, env=self.env,
                                          stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    def wait_until(self, ready, timeout: float = 60.0, what: str = "ready") -> float:
        """Poll `ready()` until it is true; return the seconds since the start of the wait.
        Fails at once if the process exits, else after `timeout`, showing the log's tail."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if not self.alive():
                raise StartError(f"{self.name} exited with code {self.popen.returncode} before "
                                 f"it was {what}; the end of {self.log_path}:\n{self.log_tail()}")
            try:
                if ready():
                    return time.monotonic() - started
            except Exception:
                pass  # not listening yet, or answering with an error while it starts
            time.sleep(0.1)
        raise StartError(f"{self.name} not {what} after {timeout:.0f} s; the end of "
                         f"{self.log_path}:\n{self.log_tail()}")

    def wait_http(self, url: str, timeout: float = 60.0) -> float:
        return self.wait_until(lambda: requests.get(url, timeout=2).status_code == 200, timeout,
                               what=f"answering 200 at {url}")

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited after `grace` seconds."""
        self.request_stop()
        self.wait_stopped(grace)

    def request_stop(self) -> None:
        """SIGTERM to the process itself: nginx, rabbitmq-server's script and nameko each stop
        their own children in their own way."""
        if not self.alive():
            return
        try:
            # remembered now: once the leader has exited, its orphans are no longer its children
            self._family = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            self._family = []
        os.kill(self.pid, signal.SIGTERM)

    def wait_stopped(self, grace: float = 10.0) -> None:
        if self.popen is None:
            return
        deadline = time.monotonic() + grace
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)  # the leader is unreaped: the group is ours
            self.popen.wait()
        # whatever outlived the leader, in its group or not, gets the rest of the grace period
        leftovers = {p.pid: p for p in [*self._family, *self._group()]}
        survivors = wait_gone(leftovers.values(), deadline - time.monotonic())
        for survivor in survivors:
            try:
                survivor.kill()
            except psutil.NoSuchProcess:
                pass
        wait_gone(survivors, 5)  # SIGKILL is not instantaneous either

    def kill(self) -> None:
        """SIGKILL to the whole process group, as a crash would."""
        if self.alive():
            os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait()

    def _group(self) -> list[psutil.Process]:
        """Processes still in the group after its leader was reaped. Matched by start time
        too: a reaped leader's number could in principle have been reused since."""
        members = []
        for process in psutil.process_iter(["create_time"]):
            try:
                if os.getpgid(process.pid) == self.pid \
                        and process.info["create_time"] >= self._started_at - 1:
                    members.append(process)
            except (ProcessLookupError, psutil.Error):
                pass
        return members
