"""`python -m hocvu_tools.devstack run`, the launcher behind `make run`: refusing to start over
itself or on taken ports, cleaning up after a killed run, and (e2e) the whole platform up
behind nginx, a killed service started again, and everything down again on Ctrl-C, with its
runtime data in a temporary folder."""
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time

import psutil
import pytest
import requests

from hocvu_tools.devstack import config
from hocvu_tools.devstack.__main__ import stop_leftovers
from hocvu_tools.devstack.processes import REPO, free_port
from hocvu_tools.devstack.stack import SERVICES
from tests.support.broker import Vhost


def launcher_env(tmp_path, **extra) -> dict:
    env = {name: value for name, value in os.environ.items()
           if name not in ("AMQP_URI", "MONGO_URI", "NATIONAL_ID_HASH_KEY")}
    env.update({variable: str(free_port()) for variable in config.PORT_VARIABLES.values()})
    env.update(HOCVU_VAR_DIR=str(tmp_path / "var"), PYTHONUNBUFFERED="1", **extra)
    return env


def launch(env: dict, output) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hocvu_tools.devstack", "run"], cwd=REPO, env=env,
                            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)


@pytest.mark.integration
def test_taken_ports_stop_it_before_it_starts_anything(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        env = launcher_env(tmp_path, HOCVU_HTTP_PORT=str(port))
        began = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "hocvu_tools.devstack", "run"], cwd=REPO, env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and time.monotonic() - began < 30
    assert f"{port} (edge, HOCVU_HTTP_PORT): taken by pid {os.getpid()}" in done.stderr
    assert not (tmp_path / "var" / "store").exists()


@pytest.mark.integration
def test_a_bad_port_variable_is_named(tmp_path):
    done = subprocess.run([sys.executable, "-m", "hocvu_tools.devstack", "run"], cwd=REPO,
                          env=launcher_env(tmp_path, HOCVU_LESSONS_PORT="lessons"),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "HOCVU_LESSONS_PORT='lessons'" in done.stderr


def answers_200(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def identity(process) -> dict:
    return {"pid": process.pid, "started": psutil.Process(process.pid).create_time()}


@pytest.mark.integration
def test_what_a_killed_launcher_left_running_is_stopped(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = subprocess.Popen(["sleep", "60"], start_new_session=True)
    state = tmp_path / "devstack.json"
    state.write_text(json.dumps({"launcher": {"pid": dead.pid, "started": 0.0},
                                 "children": [{"name": "lessons", **identity(orphan)}]}))
    stop_leftovers(state)
    assert orphan.wait(5) is not None
    assert not state.exists()


@pytest.mark.integration
def test_a_running_launcher_is_not_started_twice(tmp_path):
    state = tmp_path / "devstack.json"
    state.write_text(json.dumps({"launcher": identity(psutil.Process()), "children": []}))
    with pytest.raises(SystemExit, match="already running"):
        stop_leftovers(state)
    assert state.exists()


@pytest.mark.e2e
@pytest.mark.timeout(400)
def test_make_run_starts_everything_behind_nginx_and_ctrl_c_stops_it(tmp_path):
    var = tmp_path / "var"
    with Vhost() as vhost:
        env = launcher_env(tmp_path, AMQP_URI=vhost.amqp_uri)
        edge = f"http://127.0.0.1:{env['HOCVU_HTTP_PORT']}"
        output_path = tmp_path / "launcher.out"
        began = time.monotonic()
        with open(output_path, "w") as output:
            launcher = launch(env, output)
        try:
            while "hocvu is running at" not in output_path.read_text():
                assert launcher.poll() is None, output_path.read_text()
                assert time.monotonic() - began < 300, output_path.read_text()
                time.sleep(0.5)
            print(f"make run: everything answered after {time.monotonic() - began:.1f} s")
            text = output_path.read_text()
            assert f"hocvu is running at {edge}" in text
            for service in SERVICES:
                assert f"{edge}/api/{service}/" in text and f"{service}.log" in text
                port = env[config.PORT_VARIABLES[service]]
                assert requests.get(f"http://127.0.0.1:{port}/api/{service}/health/ready",
                                    timeout=5).json()["status"] == "ok"
            assert "guest:***@" in text and "guest:guest@" not in text
            assert requests.get(f"{edge}/nothing-here", timeout=5).json()["error"] == "NOT_FOUND"

            assert stat.S_IMODE((var / "secrets.env").stat().st_mode) == 0o600
            assert (var / "stores").is_dir() and (var / "log" / "nginx-access.log").exists()
            children = json.loads((var / "run" / "devstack.json").read_text())["children"]
            assert {c["name"] for c in children} == {
                "sms_simulator", "nginx", *SERVICES, *(f"store-{s}" for s in SERVICES)}
            # the province admin it prints can sign in
            password = dict(line.split("=", 1) for line in (var / "secrets.env").read_text()
                            .splitlines() if "=" in line)["BOOTSTRAP_ADMIN_PASSWORD"]
            assert "user admin" in text
            signed_in = requests.post(f"{edge}/api/identity/staff/sign-in", timeout=10,
                                      json={"username": "admin", "password": password})
            assert signed_in.status_code == 200, signed_in.text

            # a service that dies is started again, as systemd and Kubernetes would
            lessons = next(child["pid"] for child in children if child["name"] == "lessons")
            os.killpg(lessons, signal.SIGKILL)
            port = env[config.PORT_VARIABLES["lessons"]]
            ready = f"http://127.0.0.1:{port}/api/lessons/health/ready"
            killed = time.monotonic()
            while "lessons started again" not in output_path.read_text() or \
                    not answers_200(ready):
                assert launcher.poll() is None, output_path.read_text()
                assert time.monotonic() - killed < 120, output_path.read_text()
                time.sleep(0.5)
            print(f"make run: lessons killed, started again and ready after "
                  f"{time.monotonic() - killed:.1f} s")
            text = output_path.read_text()
            assert "lessons exited with code -9; starting it again in 1 s" in text
            children = json.loads((var / "run" / "devstack.json").read_text())["children"]
            assert lessons not in [child["pid"] for child in children]  # the new one recorded
            processes = [psutil.Process(c["pid"]) for c in children]
            processes += [child for p in processes for child in p.children(recursive=True)]
        finally:
            launcher.send_signal(signal.SIGINT)
            stopping = time.monotonic()
            code = launcher.wait(60)
        print(f"make run: stopped {time.monotonic() - stopping:.1f} s after Ctrl-C")
    assert code == 0, output_path.read_text()
    assert not [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not (var / "run" / "devstack.json").exists()
    assert "stopped." in output_path.read_text()


def start_make_run(tmp_path, env: dict) -> tuple[subprocess.Popen, list[psutil.Process]]:
    """`make run` in the background, as a script starts it; returns make and every process
    the platform runs (the launcher, what it started, and their children) once it is up."""
    output_path = tmp_path / "make-run.out"
    with open(output_path, "w") as output:
        make = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=REPO, env=env,
                                stdin=subprocess.DEVNULL, stdout=output,
                                stderr=subprocess.STDOUT)
    began = time.monotonic()
    while "hocvu is running at" not in output_path.read_text():
        assert make.poll() is None, output_path.read_text()
        assert time.monotonic() - began < 300, output_path.read_text()
        time.sleep(0.5)
    state = json.loads((tmp_path / "var" / "run" / "devstack.json").read_text())
    processes = [psutil.Process(p["pid"]) for p in [state["launcher"], *state["children"]]]
    processes += [child for p in processes for child in p.children(recursive=True)]
    return make, processes


def still_running(processes: list[psutil.Process]) -> list[psutil.Process]:
    deadline = time.monotonic() + 60
    while True:
        running = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.2)


@pytest.mark.e2e
@pytest.mark.timeout(400)
def test_a_script_stops_make_run_with_kill_or_make_stop(tmp_path):
    """`make run &` then `kill $!` (SIGTERM to make, which passes it on), or `make stop`:
    either stops the whole platform, as Ctrl-C does."""
    with Vhost() as vhost:
        env = launcher_env(tmp_path, AMQP_URI=vhost.amqp_uri)
        make, processes = start_make_run(tmp_path, env)
        assert make.pid not in [p.pid for p in processes]
        make.send_signal(signal.SIGTERM)
        make.wait(60)
        assert not still_running(processes)
        assert not (tmp_path / "var" / "run" / "devstack.json").exists()

        make, processes = start_make_run(tmp_path, env)
        stopper = subprocess.run(["make", "--no-print-directory", "stop"], cwd=REPO, env=env,
                                 stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                 timeout=120)
        assert stopper.returncode == 0, stopper.stdout + stopper.stderr
        assert "stopped." in stopper.stdout
        assert make.wait(60) == 0
        assert not still_running(processes)
    stopper = subprocess.run(["make", "--no-print-directory", "stop"], cwd=REPO, env=env,
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert stopper.returncode == 0 and "not running" in stopper.stdout
