"""Fixtures that start a real `kiln up` process on a free loopback port and stop it after."""

import os
import signal
import subprocess
import time
import uuid

import pytest
import requests

KILN_BIN = os.environ.get("KILN_BIN") or os.path.expanduser("~/.cache/kiln/target/debug/kiln")


class KilnServer:
    """A `kiln up` child process on 127.0.0.1."""

    def __init__(self, data_dir, extra_args=(), env=None, port=0):
        self.data_dir = str(data_dir)
        self.port = port
        self.extra_args = list(extra_args)
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.url = None

    def start(self):
        self.proc = subprocess.Popen(
            [KILN_BIN, "up", "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", self.data_dir, *self.extra_args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            text=True,
        )
        line = self.proc.stdout.readline()
        if not line.startswith("Kiln listening on "):
            err = self.proc.stderr.read() if self.proc.poll() is not None else ""
            raise RuntimeError(f"kiln did not start: {line!r} {err}")
        self.url = line.strip().split()[-1]
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def api(self, method, path, **kwargs):
        return requests.request(method, self.url + path, timeout=30, **kwargs)


@pytest.fixture
def kiln_factory(tmp_path):
    servers = []

    def make(data_dir=None, extra_args=(), env=None):
        server = KilnServer(data_dir or tmp_path / f"data-{len(servers)}", extra_args, env).start()
        servers.append(server)
        return server

    yield make
    for s in servers:
        s.stop()


@pytest.fixture
def kiln(kiln_factory):
    return kiln_factory()


@pytest.fixture
def tracking(kiln, monkeypatch):
    """A kiln server set as the mlflow client's tracking URI."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", kiln.url)
    mlflow.set_tracking_uri(kiln.url)
    # The fluent API remembers the active experiment across servers; start each test on "0".
    mlflow.set_experiment(experiment_id="0")
    yield kiln
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


def free_port():
    """A loopback port nothing listens on now (for a server that must come back on the same one)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_until(predicate, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False
