#!/usr/bin/env python3
"""Kiln vs `mlflow server`: the same HTTP workload against both, side by side, on SQLite.

Run from the repository root after `cargo build --release` (or pass --kiln):

    .venv/bin/python benches/tracking.py [--quick]

Both servers run on this machine in this process tree, on loopback, each on its own fresh
SQLite database and artifact folder. Every figure is measured the same way for both; the
script prints each figure and the ratio mlflow/kiln (higher means Kiln is faster or smaller).

The two workloads run in lockstep, a block of timed requests on Kiln, then the same block on
MLflow, and so on: a shared machine's speed drifts (by up to 2x over minutes, here), and taking
both servers' samples in the same minutes keeps that drift out of the ratios. Within a block
requests go back to back, as before; each block starts with an untimed `GET /health` (and, for
reads, an untimed call of the read itself), so the other server's work in between does not
leave this one idle and cold when its clock starts.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def tree_rss_mb(pid):
    """Resident memory of a process and all its descendants, in MB."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except FileNotFoundError:
            pass
    return total / 1024


class Server:
    def __init__(self, name, argv, port, env=None):
        self.name, self.argv, self.port, self.env = name, argv, port, env
        self.url = f"http://127.0.0.1:{port}"

    def start(self):
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env=self.env, start_new_session=True)
        while True:
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited during start-up")
            if time.perf_counter() - t0 > 300:
                raise RuntimeError(f"{self.name} did not start within 300 s")
            time.sleep(0.005)
        self.start_s = time.perf_counter() - t0
        time.sleep(2.0)  # settle, then read idle memory
        self.idle_rss_mb = tree_rss_mb(self.proc.pid)
        return self

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except Exception:  # noqa: BLE001
            os.killpg(self.proc.pid, signal.SIGKILL)


def timed(fn, n, block, wake, warm=False):
    """n samples of fn(i) in blocks of `block`, yielding before each block so the driver can
    take the other server's block next. Each block starts with `wake()` untimed and, when
    `warm` (for reads, which are repeatable), with one untimed fn(i)."""
    samples = []
    for i in range(n):
        if i % block == 0:
            yield
            wake()
            if warm:
                fn(i)
        t0 = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - t0)
    return samples


def p50_ms(samples):
    return statistics.median(samples) * 1000


TOKEN = re.compile(rb'"next_page_token"\s*:\s*"([^"]+)"')


class Client:
    """One keep-alive HTTP/1.1 connection through the standard library's `http.client`.

    Why not `requests`: its own work per call (about 0.4 ms here) is as long as a fast
    server's whole answer, so it would hide the very differences the benchmark is for; the
    lean client costs about 0.05 ms and is the same for both servers."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def call(self, method, path, body=None):
        headers = {"Content-Type": "application/json"} if body is not None else {}
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"{method} {path}: HTTP {r.status}: {data[:300]!r}")
        return data


def workload(server, scale):
    """The workload on one server, as a generator that stops before each timed request (see
    `timed`) and returns the figures.

    Latency is measured to the last byte of each answer. Request bodies are encoded before
    the clock starts and answers are not JSON-decoded inside the timed region: both are the
    client's costs, not the server's, and would only blur the comparison."""
    c = Client(server.port)
    api = "/api/2.0/mlflow"

    def post(path, body):
        return json.loads(c.call("POST", api + path, json.dumps(body)))

    def post_raw(path, data):
        return c.call("POST", api + path, data)

    def wake():
        c.call("GET", "/health")

    exp = post("/experiments/create", {"name": "bench-" + uuid.uuid4().hex[:6]})["experiment_id"]
    results = {}

    # 1. create run
    create_body = json.dumps({"experiment_id": exp, "start_time": 0})
    samples = yield from timed(lambda i: post_raw("/runs/create", create_body), scale["creates"], 20, wake)
    results["create run (p50)"] = p50_ms(samples)

    # 2. log-batch of 1000 metrics, history of one key growing to batches*1000 points
    run_id = post("/runs/create", {"experiment_id": exp})["run"]["info"]["run_id"]
    now = int(time.time() * 1000)

    batches = [
        json.dumps({"run_id": run_id, "metrics": [
            {"key": "loss", "value": 1.0 / (i * 1000 + j + 1), "timestamp": now + i, "step": i * 1000 + j}
            for j in range(1000)]})
        for i in range(scale["batches"])
    ]
    samples = yield from timed(lambda i: post_raw("/runs/log-batch", batches[i]), scale["batches"], 10, wake)
    results[f"log-batch 1000 metrics, history to {scale['batches']}k (p50)"] = p50_ms(samples)

    # 3. read the whole history, as the client pages it (25k per page)
    pages = []

    def read_history(_):
        token = None
        pages.clear()
        while True:
            params = {"run_id": run_id, "metric_key": "loss", "max_results": 25000}
            if token:
                params["page_token"] = token
            content = c.call("GET", api + "/metrics/get-history?" + urllib.parse.urlencode(params))
            pages.append(content)
            m = TOKEN.search(content[-512:])
            token = m.group(1).decode() if m else None
            if not token:
                break

    samples = yield from timed(read_history, scale["history_reads"], 1, wake, warm=True)
    # Outside the clock: check the answer, and time the client's own decoding once.
    t0 = time.perf_counter()
    n = sum(len(json.loads(p).get("metrics", [])) for p in pages)
    decode_ms = (time.perf_counter() - t0) * 1000
    assert n == scale["batches"] * 1000, n
    results[f"read {scale['batches']}k-point metric history (p50)"] = p50_ms(samples)
    results["  (client-side json.loads of that history, not in the line above)"] = decode_ms

    # 4. search over 1000 runs with a metric/param filter
    search_exp = post("/experiments/create", {"name": "search-" + uuid.uuid4().hex[:6]})["experiment_id"]
    for i in range(scale["runs"]):
        rid = post("/runs/create", {"experiment_id": search_exp})["run"]["info"]["run_id"]
        post("/runs/log-batch", {
            "run_id": rid,
            "params": [{"key": f"p{k}", "value": f"{(i * 7 + k) % 100 / 100}"} for k in range(10)],
            "metrics": [{"key": f"m{k}", "value": ((i * 13 + k) % 100) / 100, "timestamp": now, "step": 0}
                        for k in range(10)],
            "tags": [{"key": f"t{k}", "value": "x"} for k in range(5)],
        })
    body = {"experiment_ids": [search_exp], "filter": "metrics.m1 > 0.5 and params.p1 LIKE '0.%'",
            "order_by": ["metrics.m2 DESC"], "max_results": 100}
    check = post("/runs/search", body)
    assert len(check.get("runs", [])) >= 50, len(check.get("runs", []))
    search_body = json.dumps(body)
    for _ in range(5):  # warm-up, untimed, the same for both servers
        post_raw("/runs/search", search_body)
    samples = yield from timed(lambda i: post_raw("/runs/search", search_body), scale["searches"], 10, wake,
                               warm=True)
    results[f"search {scale['runs']} runs, metric+param filter, 100 results (p50)"] = p50_ms(samples)
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kiln", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/kiln/target")), "release", "kiln"))
    ap.add_argument("--mlflow", default=os.path.join(os.path.dirname(sys.executable), "mlflow"))
    ap.add_argument("--quick", action="store_true", help="a smaller workload (10k-point history, 200 runs)")
    ap.add_argument("--only", choices=["kiln", "mlflow"],
                    help="run the workload on one server only (no ratios; for profiling and iteration)")
    args = ap.parse_args()
    scale = (dict(creates=50, batches=10, history_reads=3, runs=200, searches=10) if args.quick
             else dict(creates=200, batches=100, history_reads=5, runs=1000, searches=50))

    work = tempfile.mkdtemp(prefix="kiln-bench-")
    try:
        kp, mp = free_port(), free_port()
        kiln = Server("kiln", [args.kiln, "up", "--port", str(kp), "--data-dir", os.path.join(work, "kiln")], kp,
                      env=dict(os.environ, KILN_LOG="warn"))
        mlflow = Server("mlflow", [args.mlflow, "server", "--host", "127.0.0.1", "--port", str(mp),
                                   "--backend-store-uri", f"sqlite:///{work}/mlflow.db",
                                   "--artifacts-destination", os.path.join(work, "mlflow-artifacts")], mp,
                        env=dict(os.environ, MLFLOW_TRACKING_URI=""))
        rows = {}
        servers = [s for s in (kiln, mlflow) if args.only in (None, s.name)]
        started = []
        try:
            # One at a time, so each start and idle footprint is its own; both then stay up.
            for server in servers:
                print(f"starting {server.name} ...", file=sys.stderr, flush=True)
                started.append(server.start())
            print("running the workloads in lockstep ...", file=sys.stderr, flush=True)
            running = {s.name: workload(s, scale) for s in servers}
            while running:
                for name, steps in list(running.items()):
                    try:
                        next(steps)  # up to and including this server's next timed request
                    except StopIteration as done:
                        server = next(s for s in servers if s.name == name)
                        figures = {"server start (s)": server.start_s, "idle RSS (MB)": server.idle_rss_mb}
                        figures.update({k + " ms": v for k, v in done.value.items()})
                        rows[name] = figures
                        del running[name]
        finally:
            for server in started:
                server.stop()
        if args.only:
            for key, value in rows[args.only].items():
                print(f"{key:<70}  {value:>10.3f}")
            return
        width = max(len(k) for k in rows["kiln"])
        print(f"\n{'measure':<{width}}  {'kiln':>10}  {'mlflow':>10}  {'mlflow/kiln':>11}")
        for key in rows["kiln"]:
            k, m = rows["kiln"][key], rows["mlflow"][key]
            print(f"{key:<{width}}  {k:>10.3f}  {m:>10.3f}  {m / k:>10.1f}x")
        print(json.dumps({"kiln": rows["kiln"], "mlflow": rows["mlflow"], "scale": scale}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
