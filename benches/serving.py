#!/usr/bin/env python3
"""Kiln online endpoints vs `mlflow models serve`, side by side, under the same load.

Run from the repository root after `cargo build --release` (or pass --kiln):

    .venv/bin/python benches/serving.py [--quick]

The model is scikit-learn's LogisticRegression(max_iter=500) fitted on the iris data that ships
with scikit-learn (float32 features, as tests/fixtures/onnx/generate.py fits it):
- the peer serves it as an MLflow model (`mlflow.sklearn.save_model`) with
  `mlflow models serve --env-manager local` (MLflow 3.17.2, its default single worker);
- Kiln serves the ONNX export of the same fit (tests/fixtures/onnx/iris_logreg.onnx) natively
  (tract, in the server's process), behind an online endpoint with key auth;
- and the same MLflow model folder through its pyfunc worker path (one worker, MLflow's own
  scoring code, this venv's Python), behind a second endpoint.
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


def train_and_save(work):
    """The scikit-learn fit, saved as an MLflow model folder."""
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
    return path


def start_mlflow(path):
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


def start_kiln(kiln, work, concurrency, mlflow_model):
    """A Kiln server with one endpoint per runtime: `onnx-bench` (the ONNX export, native) and
    `pyfunc-bench` (the MLflow model in one Python worker, in this venv's Python as
    `--env-manager local` uses it)."""
    env = dict(os.environ, KILN_LOG="warn", PATH=VENV_BIN + os.pathsep + os.environ["PATH"])
    proc = subprocess.Popen(
        [kiln, "up", "--port", "0", "--data-dir", os.path.join(work, "kiln")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
    )
    url = proc.stdout.readline().strip().split()[-1]
    model = os.path.join(work, "iris_logreg.onnx")
    shutil.copy(FIXTURE, model)
    run = lambda *a: subprocess.run([kiln, "--url", url, *a], check=True, capture_output=True, text=True)
    keys = {}
    for name, model_lines in [
        ("onnx-bench", f"model:\n  path: {model}\n"),
        ("pyfunc-bench", f"model:\n  path: {mlflow_model}\n  type: mlflow_model\nenvironment:\n  image: python\n"),
    ]:
        with open(os.path.join(work, f"{name}.yml"), "w") as f:
            f.write(f"name: {name}\nauth_mode: key\n")
        with open(os.path.join(work, f"{name}-blue.yml"), "w") as f:
            f.write(
                f"name: blue\nendpoint_name: {name}\n{model_lines}instance_count: 1\n"
                f"request_settings:\n  max_concurrent_requests_per_instance: {concurrency}\n"
            )
        run("online-endpoint", "create", "-f", os.path.join(work, f"{name}.yml"))
        run("online-deployment", "create", "-f", os.path.join(work, f"{name}-blue.yml"), "--all-traffic")
        creds = json.loads(run("-o", "json", "online-endpoint", "get-credentials", "-n", name).stdout)
        keys[name] = (f"{url}/endpoints/{name}/score", creds["primaryKey"])
    return proc, keys


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
        model_path = train_and_save(work)
        proc, url = start_mlflow(model_path)
        try:
            r = requests.post(url, json=BODY, timeout=30)
            assert r.status_code == 200, r.text
            print(f"mlflow models serve answers {r.json()}", file=sys.stderr)
            results["mlflow"] = load(args.kiln, url, body_file, [], args.concurrency, seconds)
        finally:
            stop(proc)
        proc, endpoints = start_kiln(args.kiln, work, args.concurrency, model_path)
        try:
            for name, result in [("onnx-bench", "kiln_onnx"), ("pyfunc-bench", "kiln_pyfunc")]:
                url, key = endpoints[name]
                r = requests.post(url, json=BODY, headers={"Authorization": f"Bearer {key}"}, timeout=30)
                assert r.status_code == 200, r.text
                print(f"kiln ({name}) answers {r.json()}", file=sys.stderr)
                auth = [f"Authorization: Bearer {key}"]
                results[result] = load(args.kiln, url, body_file, auth, args.concurrency, seconds)
        finally:
            stop(proc)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    m, k, p = results["mlflow"], results["kiln_onnx"], results["kiln_pyfunc"]
    print(f"\nOne-row iris requests, {args.concurrency} connections, {seconds} s each (after 1 s of warm-up)\n")
    print(f"{'':28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for label, r in [("mlflow models serve", m), ("kiln, ONNX runtime", k), ("kiln, pyfunc (1 worker)", p)]:
        print(f"{label:28}{r['rps']:>10.0f}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}{r['errors']:>8}")
    for label, r in [("ONNX runtime", k), ("pyfunc worker", p)]:
        print(
            f"ratios, {label} vs mlflow: throughput x{r['rps'] / m['rps']:.1f}, "
            f"p50 x{m['p50_ms'] / r['p50_ms']:.1f}, p99 x{m['p99_ms'] / r['p99_ms']:.1f}"
        )
    print(json.dumps({"bench": "serving", "concurrency": args.concurrency, "seconds": seconds, **results}))


if __name__ == "__main__":
    main()
