#!/usr/bin/env python3
"""Kiln online endpoints vs `mlflow models serve`, side by side, under the same load.

Run from the repository root after `cargo build --release` (or pass --kiln):

    .venv/bin/python benches/serving.py [--quick]

The model is scikit-learn's LogisticRegression(max_iter=500) fitted on the iris data that ships
with scikit-learn (float32 features, as tests/fixtures/onnx/generate.py fits it):
- the peer serves it as an MLflow model (`mlflow.sklearn.save_model`) with
  `mlflow models serve --env-manager local` (MLflow 3.17.2, its default single worker);
- Kiln serves the ONNX export of the same fit (tests/fixtures/onnx/iris_logreg.onnx) natively
  (tract, in the server's process), behind an online endpoint with key auth.
Both get the same request (`dataframe_split`, one row) from the same load generator
(`kiln bench load`: N connections posting back to back) for the same time. Prints requests per
second, p50 and p99 latency, and the ratios (higher means Kiln is faster).
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.dirname(sys.executable)
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "onnx", "iris_logreg.onnx")
COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
BODY = {"dataframe_split": {"columns": COLUMNS, "data": [[5.1, 3.5, 1.4, 0.2]]}}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_http(url, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TimeoutError(url)


def load(kiln, url, body_file, headers, concurrency, seconds):
    cmd = [kiln, "bench", "load", "--url", url, "--body-file", body_file, "--concurrency", str(concurrency)]
    cmd += ["--duration", str(seconds), "--warmup", "1"]
    for h in headers:
        cmd += ["--header", h]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def start_mlflow(work):
    import numpy as np
    import pandas as pd
    import mlflow.sklearn
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True, as_frame=True)
    X = X.astype(np.float32)
    model = LogisticRegression(max_iter=500).fit(X, y)
    path = os.path.join(work, "mlflow-model")
    mlflow.sklearn.save_model(model, path, input_example=pd.DataFrame(X[:1]))
    port = free_port()
    env = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ["PATH"])
    proc = subprocess.Popen(
        [os.path.join(VENV_BIN, "mlflow"), "models", "serve", "-m", path, "-h", "127.0.0.1", "-p", str(port),
         "--env-manager", "local"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/ping")
    return proc, url + "/invocations"


def start_kiln(kiln, work, concurrency):
    proc = subprocess.Popen(
        [kiln, "up", "--port", "0", "--data-dir", os.path.join(work, "kiln")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=dict(os.environ, KILN_LOG="warn"), text=True,
    )
    url = proc.stdout.readline().strip().split()[-1]
    model = os.path.join(work, "iris_logreg.onnx")
    shutil.copy(FIXTURE, model)
    with open(os.path.join(work, "ep.yml"), "w") as f:
        f.write("name: iris-bench\nauth_mode: key\n")
    with open(os.path.join(work, "blue.yml"), "w") as f:
        f.write(
            f"name: blue\nendpoint_name: iris-bench\nmodel:\n  path: {model}\ninstance_count: 1\n"
            f"request_settings:\n  max_concurrent_requests_per_instance: {concurrency}\n"
        )
    run = lambda *a: subprocess.run([kiln, "--url", url, *a], check=True, capture_output=True, text=True)
    run("online-endpoint", "create", "-f", os.path.join(work, "ep.yml"))
    run("online-deployment", "create", "-f", os.path.join(work, "blue.yml"), "--all-traffic")
    key = json.loads(run("-o", "json", "online-endpoint", "get-credentials", "-n", "iris-bench").stdout)["primaryKey"]
    return proc, f"{url}/endpoints/iris-bench/score", key


def stop(proc):
    try:
        os.killpg(proc.pid, 15)
    except (ProcessLookupError, PermissionError):
        proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", default=os.path.join(ROOT, "target", "release", "kiln"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    seconds = 3 if args.quick else 10
    work = tempfile.mkdtemp(prefix="kiln-bench-serving-")
    body_file = os.path.join(work, "body.json")
    with open(body_file, "w") as f:
        json.dump(BODY, f)
    results = {}
    try:
        proc, url = start_mlflow(work)
        try:
            r = requests.post(url, json=BODY, timeout=30)
            assert r.status_code == 200, r.text
            print(f"mlflow models serve answers {r.json()}", file=sys.stderr)
            results["mlflow"] = load(args.kiln, url, body_file, [], args.concurrency, seconds)
        finally:
            stop(proc)
        proc, url, key = start_kiln(args.kiln, work, args.concurrency)
        try:
            r = requests.post(url, json=BODY, headers={"Authorization": f"Bearer {key}"}, timeout=30)
            assert r.status_code == 200, r.text
            print(f"kiln (onnx) answers {r.json()}", file=sys.stderr)
            results["kiln_onnx"] = load(args.kiln, url, body_file, [f"Authorization: Bearer {key}"], args.concurrency, seconds)
        finally:
            stop(proc)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    m, k = results["mlflow"], results["kiln_onnx"]
    print(f"\nOne-row iris requests, {args.concurrency} connections, {seconds} s each (after 1 s of warm-up)\n")
    print(f"{'':28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for label, r in [("mlflow models serve", m), ("kiln, ONNX runtime", k)]:
        print(f"{label:28}{r['rps']:>10.0f}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}{r['errors']:>8}")
    print("kiln, pyfunc workers        (not available yet)")
    print(
        f"\nratios (mlflow / kiln): throughput x{k['rps'] / m['rps']:.1f}, "
        f"p50 x{m['p50_ms'] / k['p50_ms']:.1f}, p99 x{m['p99_ms'] / k['p99_ms']:.1f}"
    )
    print(json.dumps({"bench": "serving", "concurrency": args.concurrency, "seconds": seconds, **results}))


if __name__ == "__main__":
    main()
