#!/usr/bin/env python3
"""Kiln command jobs vs `mlflow run` (MLflow Projects on the local machine), side by side.

Run from the repository root after `cargo build --release` (or pass --kiln):

    .venv/bin/python benches/jobs.py [--quick]

Figures, each measured the same way for both tools in this process tree:
- submit to running: from the client's request to the first line of the user's process
  (the process prints its own clock), warm environment;
- throughput of no-op jobs (200 for Kiln; `mlflow run` is timed on fewer and extrapolated,
  since each costs seconds);
- environment build, cold and warm: Kiln builds with uv and caches by content hash; the peer
  is what `mlflow run --env-manager virtualenv` does underneath (a fresh venv and pip).
Prints each figure and the ratio peer/kiln (higher means Kiln is faster).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.dirname(sys.executable)


def start_kiln(binary, data, cache):
    env = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ["PATH"], KILN_CACHE_DIR=cache, KILN_LOG="warn")
    proc = subprocess.Popen(
        [binary, "up", "--port", "0", "--data-dir", data], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True
    )
    url = proc.stdout.readline().strip().split()[-1]
    return proc, url


def submit(url, spec):
    r = requests.post(url + "/api/v1/jobs", json={"spec": spec, "source": "bench.yml"}, timeout=60)
    r.raise_for_status()
    return r.json()["name"]


def wait(url, name, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = requests.get(f"{url}/api/v1/jobs/{name}", timeout=30).json()
        if job["status"] in ("Completed", "Failed", "Canceled"):
            return job
        time.sleep(0.01)
    raise TimeoutError(name)


def log_of(url, name):
    return requests.get(f"{url}/api/v1/jobs/{name}/log", timeout=30).text


# The user's process prints its own clock as its first act.
CLOCK = "python3 -c 'import time; print(\"T\", repr(time.time()))'"


def first_clock(text):
    for line in text.splitlines():
        if line.startswith("T "):
            return float(line[2:])
    raise ValueError(text[-500:])


def job_spec(command, conda=None):
    env = {"image": "python"}
    if conda:
        env["conda_file"] = conda
    return json.dumps({"command": command, "environment": env, "compute": "bench"})


def kiln_submit_to_running(url, n):
    spec = job_spec(CLOCK)
    out = []
    for _ in range(n):
        t0 = time.time()
        name = submit(url, spec)
        wait(url, name)
        out.append(first_clock(log_of(url, name)) - t0)
    return out


def kiln_throughput(url, n):
    spec = job_spec("true")
    t0 = time.time()
    names = [submit(url, spec) for _ in range(n)]
    for name in names:
        job = wait(url, name)
        assert job["status"] == "Completed", job
    return n / (time.time() - t0)


def kiln_env_build(url, packages):
    spec = job_spec(CLOCK, {"dependencies": [{"pip": packages}]})
    t0 = time.time()
    name = submit(url, spec)
    job = wait(url, name)
    assert job["status"] == "Completed", (job, log_of(url, name))
    return first_clock(log_of(url, name)) - t0


def mlflow_project(tmp):
    proj = os.path.join(tmp, "proj")
    os.makedirs(proj, exist_ok=True)
    with open(os.path.join(proj, "MLproject"), "w") as f:
        f.write("name: bench\nentry_points:\n  main:\n    command: " + json.dumps(CLOCK) + "\n  noop:\n    command: 'true'\n")
    return proj


def mlflow_run(proj, entry, tracking):
    env = dict(os.environ, MLFLOW_TRACKING_URI=tracking, PATH=VENV_BIN + os.pathsep + os.environ["PATH"])
    t0 = time.time()
    out = subprocess.run(
        [os.path.join(VENV_BIN, "mlflow"), "run", proj, "-e", entry, "--env-manager", "local"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return t0, time.time(), out.stdout


def pip_env_build(tmp, packages, cache_dir):
    venv = tempfile.mkdtemp(dir=tmp)
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    env = dict(os.environ, PIP_CACHE_DIR=cache_dir)
    subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "--disable-pip-version-check", *packages], check=True, env=env)
    subprocess.run([os.path.join(venv, "bin", "python"), "-c", "print(1)"], check=True, capture_output=True)
    return time.time() - t0


def row(label, kiln, peer, unit, higher_is_better=False):
    ratio = (kiln / peer) if higher_is_better else (peer / kiln)
    print(f"{label:<44} kiln {kiln:>10.3f} {unit:<6} mlflow {peer:>10.3f} {unit:<6} ratio {ratio:>7.1f}x")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", default=os.path.join(ROOT, "target/release/kiln"))
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n_latency = 5 if args.quick else 20
    n_jobs = 50 if args.quick else 200
    n_peer = 3 if args.quick else 5
    packages = ["six==1.16.0", "idna==3.7"]
    tmp = tempfile.mkdtemp(prefix="kiln-bench-jobs-")
    proc, url = start_kiln(args.kiln, os.path.join(tmp, "data"), os.path.join(tmp, "cache"))
    try:
        requests.post(url + "/api/v1/computes", json={"name": "bench", "max_concurrent_jobs": 8}, timeout=30).raise_for_status()
        kiln_submit_to_running(url, 2)  # warm-up
        lat = kiln_submit_to_running(url, n_latency)
        thr = kiln_throughput(url, n_jobs)
        # The very first environment also installs uv from PyPI into the cache (once per machine).
        first = kiln_env_build(url, ["six==1.16.0"])
        cold = kiln_env_build(url, packages)
        warm = kiln_env_build(url, packages)
    finally:
        proc.terminate()
        proc.wait()

    proj = mlflow_project(tmp)
    tracking = "sqlite:///" + os.path.join(tmp, "mlflow.db")
    mlflow_run(proj, "noop", tracking)  # creates the database
    peer_lat = []
    for _ in range(n_peer):
        t0, _, out = mlflow_run(proj, "main", tracking)
        peer_lat.append(first_clock(out) - t0)
    t0 = time.time()
    for _ in range(n_peer):
        mlflow_run(proj, "noop", tracking)
    peer_thr = n_peer / (time.time() - t0)
    pip_cache = os.path.join(tmp, "pip-cache")
    peer_cold = pip_env_build(tmp, packages, pip_cache)
    peer_warm = pip_env_build(tmp, packages, pip_cache)

    print(f"Kiln {args.kiln} vs mlflow run (--env-manager local) and venv+pip; {os.cpu_count()} cores")
    row("submit to running, warm env (median)", statistics.median(lat), statistics.median(peer_lat), "s")
    row(f"no-op jobs/s ({n_jobs} kiln, {n_peer} mlflow)", thr, peer_thr, "job/s", higher_is_better=True)
    row("environment build, cold", cold, peer_cold, "s")
    row("environment build, warm (second job)", warm, peer_warm, "s")
    print(f"(kiln's first environment ever, installing uv from PyPI too: {first:.3f} s)")
    print(f"target: submit to running <= 0.100 s: {'met' if statistics.median(lat) <= 0.1 else 'NOT met'}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
