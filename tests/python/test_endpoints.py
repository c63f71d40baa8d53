"""Online endpoints for real: Azure ML v2 endpoint and deployment YAML through `kiln`, requests to
the scoring URI over HTTP, ONNX models from scikit-learn (tests/fixtures/onnx, made by
generate.py there) served natively."""

import json
import os
import subprocess
import threading
import time

import pytest
import requests

from conftest import KILN_BIN, KilnServer, wait_until

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "onnx")
EXPECTED = json.load(open(os.path.join(FIXTURES, "expected.json")))
PROBE = EXPECTED["probe"]


@pytest.fixture
def server(tmp_path):
    s = KilnServer(tmp_path / "data").start()
    yield s
    s.stop()


def kiln(server, *args, timeout=60):
    return subprocess.run([KILN_BIN, "--url", server.url, *args], capture_output=True, text=True, timeout=timeout)


def ok(server, *args):
    out = kiln(server, *args)
    assert out.returncode == 0, out.stderr
    return out


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def copy_model(tmp_path, name):
    dest = tmp_path / "models" / f"{name}.onnx"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(open(os.path.join(FIXTURES, f"{name}.onnx"), "rb").read())
    return dest


def endpoint(server, tmp_path, name="iris-ep", auth_mode="key"):
    spec = write(
        tmp_path / f"{name}.yml",
        f"$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json\n"
        f"name: {name}\nauth_mode: {auth_mode}\ndescription: iris classifier\n",
    )
    return json.loads(ok(server, "-o", "json", "online-endpoint", "create", "-f", str(spec)).stdout)


def deploy(server, tmp_path, name, model_line, endpoint_name="iris-ep", *flags, extra=""):
    spec = write(
        tmp_path / f"{endpoint_name}-{name}.yml",
        f"$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json\n"
        f"name: {name}\nendpoint_name: {endpoint_name}\n{model_line}\n"
        f"instance_type: Standard_DS3_v2\ninstance_count: 1\n{extra}",
    )
    return json.loads(ok(server, "-o", "json", "online-deployment", "create", "-f", str(spec), *flags).stdout)


def keys(server, name="iris-ep"):
    return json.loads(ok(server, "-o", "json", "online-endpoint", "get-credentials", "-n", name).stdout)


def score(uri, key, body, **headers):
    h = {"Authorization": f"Bearer {key}", **headers}
    return requests.post(uri, json=body, headers=h, timeout=30)


def test_registered_onnx_model_is_served_natively_and_restored_after_a_restart(tmp_path):
    data = tmp_path / "data"
    server = KilnServer(data).start()
    try:
        model_file = copy_model(tmp_path, "iris_logreg")
        ok(server, "model", "create", "--name", "iris-onnx", "--path", str(model_file))
        ep = endpoint(server, tmp_path)
        assert ep["scoring_uri"] == f"{server.url}/endpoints/iris-ep/score"
        dep = deploy(server, tmp_path, "blue", "model: azureml:iris-onnx:1", "iris-ep", "--all-traffic")
        assert dep["provisioning_state"] == "Succeeded"
        assert dep["runtime"] == "onnx"
        assert dep["model"]["name"] == "iris-onnx" and dep["model"]["version"] == "1"
        assert dep["inputs"] == [{"name": "X", "type": "float32", "shape": [None, 4]}]
        shown = json.loads(ok(server, "-o", "json", "online-endpoint", "show", "-n", "iris-ep").stdout)
        assert shown["traffic"] == {"blue": 100}

        k = keys(server)["primaryKey"]
        r = score(ep["scoring_uri"], k, {"inputs": PROBE})
        assert r.status_code == 200, r.text
        assert r.headers["azureml-model-deployment"] == "blue"
        assert r.json()["predictions"]["label"] == EXPECTED["iris_logreg"]["label"]
        probs = r.json()["predictions"]["probabilities"]
        for row, want in zip(probs, EXPECTED["iris_logreg"]["probabilities"]):
            assert row == pytest.approx(want, abs=1e-5)
        # Every request form of MLflow's scoring protocol.
        cols = ["sl", "sw", "pl", "pw"]
        split = score(ep["scoring_uri"], k, {"dataframe_split": {"columns": cols, "data": PROBE}}).json()
        assert [rec["label"] for rec in split["predictions"]] == [0, 1, 2]
        records = [dict(zip(cols, row)) for row in PROBE]
        assert score(ep["scoring_uri"], k, {"dataframe_records": records}).json() == split
        assert score(ep["scoring_uri"], k, {"instances": PROBE}).json()["predictions"]["label"] == [0, 1, 2]
        csv = "sl,sw,pl,pw\n" + "\n".join(",".join(map(str, row)) for row in PROBE) + "\n"
        r = requests.post(ep["scoring_uri"], data=csv, headers={"Authorization": f"Bearer {k}", "Content-Type": "text/csv"})
        assert [rec["label"] for rec in r.json()["predictions"]] == [0, 1, 2]

        # The CLI's invoke uses the endpoint's key.
        req = write(tmp_path / "sample-request.json", json.dumps({"inputs": PROBE[:1]}))
        out = ok(server, "online-endpoint", "invoke", "-n", "iris-ep", "--request-file", str(req))
        assert json.loads(out.stdout)["predictions"]["label"] == [0]
        logs = ok(server, "online-deployment", "get-logs", "-e", "iris-ep", "-n", "blue", "--lines", "10").stdout
        assert "is serving" in logs

        server.kill9()
        server = KilnServer(data).start()
        wait_until(lambda: score(f"{server.url}/endpoints/iris-ep/score", k, {"inputs": PROBE}).status_code == 200, timeout=20)
        r = score(f"{server.url}/endpoints/iris-ep/score", k, {"inputs": PROBE})
        assert r.json()["predictions"]["label"] == [0, 1, 2], "the deployment and its key came back"
    finally:
        server.stop()


def test_bad_requests_get_400_415_401_and_404_that_say_why(server, tmp_path):
    ep = endpoint(server, tmp_path)
    deploy(server, tmp_path, "blue", f"model:\n  path: {copy_model(tmp_path, 'iris_logreg')}", "iris-ep", "--all-traffic")
    uri, k = ep["scoring_uri"], keys(server)["primaryKey"]
    for body, expect in [
        ({"data": [[1, 2, 3, 4]]}, "exactly one of the input fields"),
        ({"inputs": [[1, 2, 3]]}, "input 'X' expects shape [N, 4] of float32, got [1, 3]"),
        ({"inputs": [[1, 2, "a", 4]]}, "value 2 is the string \"a\""),
        ({"inputs": [[1, 2, 3, 4], [1]]}, "ragged"),
        ({"inputs": {"Y": [[1, 2, 3, 4]]}}, "the model has no input 'Y'"),
    ]:
        r = score(uri, k, body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error_code"] == "BAD_REQUEST"
        assert expect in r.json()["message"], r.json()
    r = requests.post(uri, data="{not json", headers={"Authorization": f"Bearer {k}", "Content-Type": "application/json"})
    assert r.status_code == 400 and "Failed to parse input as JSON" in r.json()["message"]
    r = requests.post(uri, data="<x/>", headers={"Authorization": f"Bearer {k}", "Content-Type": "application/xml"})
    assert r.status_code == 415
    r = requests.post(uri, json={"inputs": PROBE})
    assert r.status_code == 401 and r.json()["error_code"] == "UNAUTHENTICATED"
    assert score(uri, "wrong", {"inputs": PROBE}).status_code == 401
    r = score(uri, k, {"inputs": PROBE}, **{"azureml-model-deployment": "nope"})
    assert r.status_code == 404 and "no deployment 'nope'" in r.json()["message"]
    r = score(f"{server.url}/endpoints/none-such/score", k, {"inputs": PROBE})
    assert r.status_code == 404
    # The server is fine after all that.
    assert score(uri, k, {"inputs": PROBE}).status_code == 200


def test_spec_errors_name_the_file_line_and_field(server, tmp_path):
    bad = write(tmp_path / "ep.yml", "name: iris-ep\nauth_mode: aad_token\n")
    out = kiln(server, "online-endpoint", "create", "-f", str(bad))
    assert out.returncode != 0
    assert f"{bad}:2:12: auth_mode: aad_token needs Microsoft Entra ID" in out.stderr
    endpoint(server, tmp_path)
    dep = write(tmp_path / "d.yml", "name: blue\nendpoint_name: iris-ep\nmodel: azureml:iris:1\ninstance_count: 0\n")
    out = kiln(server, "online-deployment", "create", "-f", str(dep))
    assert out.returncode != 0 and f"{dep}:4:17: instance_count: expected at least 1, found 0" in out.stderr
    missing = write(tmp_path / "m.yml", "name: blue\nendpoint_name: iris-ep\nmodel: azureml:nope:1\n")
    out = kiln(server, "online-deployment", "create", "-f", str(missing))
    assert out.returncode != 0 and "nope" in out.stderr
    out = kiln(server, "online-endpoint", "update", "-n", "iris-ep", "--traffic", "blue=100")
    assert out.returncode != 0 and "'blue', which this endpoint does not have" in out.stderr
    # The API refuses a bad spec with a 400 that says where.
    r = server.api("POST", "/api/v1/online-endpoints", json={"spec": "name: x\n", "source": "api.yml"})
    assert r.status_code == 400 and "api.yml:1:7: name: 'x' is not a valid endpoint name" in r.json()["message"]


def test_blue_green_split_mirror_and_the_deployment_header(server, tmp_path):
    ep = endpoint(server, tmp_path)
    deploy(server, tmp_path, "blue", f"model:\n  path: {copy_model(tmp_path, 'iris_logreg')}", "iris-ep", "--all-traffic")
    deploy(server, tmp_path, "green", f"model:\n  path: {copy_model(tmp_path, 'iris_tree')}")
    ok(server, "online-endpoint", "update", "-n", "iris-ep", "--traffic", "blue=90 green=10")
    uri, k = ep["scoring_uri"], keys(server)["primaryKey"]
    counts = {"blue": 0, "green": 0}
    session = requests.Session()
    n = 1000
    for _ in range(n):
        r = session.post(uri, json={"inputs": PROBE[:1]}, headers={"Authorization": f"Bearer {k}"})
        assert r.status_code == 200
        counts[r.headers["azureml-model-deployment"]] += 1
    # 10% of 1000 is 100 with a standard deviation of about 9.5: six of them either way.
    assert 43 <= counts["green"] <= 157, counts
    assert counts["blue"] + counts["green"] == n

    # The header picks a deployment whatever the split says.
    r = score(uri, k, {"inputs": PROBE}, **{"azureml-model-deployment": "green"})
    assert r.headers["azureml-model-deployment"] == "green"

    # Mirror: all live traffic to blue, half of it copied to green, whose answers are dropped.
    ok(server, "online-endpoint", "update", "-n", "iris-ep", "--traffic", "blue=100", "--mirror-traffic", "green=50")
    shown = json.loads(ok(server, "-o", "json", "online-endpoint", "show", "-n", "iris-ep").stdout)
    assert shown["traffic"] == {"blue": 100} and shown["mirror_traffic"] == {"green": 50}
    for _ in range(200):
        r = session.post(uri, json={"inputs": PROBE[:1]}, headers={"Authorization": f"Bearer {k}"})
        assert r.headers["azureml-model-deployment"] == "blue"

    def mirrored():
        for line in requests.get(f"{server.url}/metrics").text.splitlines():
            if line.startswith('kiln_endpoint_mirrored_requests_total{endpoint="iris-ep",deployment="green"}'):
                return float(line.split()[-1])
        return 0.0

    wait_until(lambda: mirrored() >= 60, timeout=10)
    assert mirrored() <= 140, "about half of 200 requests were copied"
    metrics = requests.get(f"{server.url}/metrics").text
    assert 'kiln_endpoint_request_duration_seconds_count{endpoint="iris-ep",deployment="blue"}' in metrics

    out = kiln(server, "online-endpoint", "update", "-n", "iris-ep", "--traffic", "green=100", "--mirror-traffic", "green=10")
    assert out.returncode != 0 and "cannot also get mirror traffic" in out.stderr
    out = kiln(server, "online-deployment", "delete", "-e", "iris-ep", "-n", "blue", "--yes")
    assert out.returncode != 0 and "still gets traffic" in out.stderr
    ok(server, "online-endpoint", "update", "-n", "iris-ep", "--traffic", "green=100", "--mirror-traffic", "blue=0")
    ok(server, "online-deployment", "delete", "-e", "iris-ep", "-n", "blue", "--yes")
    listed = json.loads(ok(server, "-o", "json", "online-deployment", "list", "-e", "iris-ep").stdout)
    assert [d["name"] for d in listed] == ["green"]
    ok(server, "online-endpoint", "delete", "-n", "iris-ep", "--yes")
    assert score(uri, k, {"inputs": PROBE}).status_code == 404


def test_keys_rotate_and_tokens_expire_with_their_endpoint(server, tmp_path):
    ep = endpoint(server, tmp_path)
    deploy(server, tmp_path, "blue", f"model:\n  path: {copy_model(tmp_path, 'iris_tree')}", "iris-ep", "--all-traffic")
    uri = ep["scoring_uri"]
    old = keys(server)
    assert score(uri, old["primaryKey"], {"inputs": PROBE}).status_code == 200
    assert score(uri, old["secondaryKey"], {"inputs": PROBE}).status_code == 200
    ok(server, "online-endpoint", "regenerate-keys", "-n", "iris-ep", "--key-type", "primary")
    new = keys(server)
    assert new["primaryKey"] != old["primaryKey"] and new["secondaryKey"] == old["secondaryKey"]
    assert score(uri, old["primaryKey"], {"inputs": PROBE}).status_code == 401, "the old primary key is revoked"
    assert score(uri, new["primaryKey"], {"inputs": PROBE}).status_code == 200
    assert score(uri, old["secondaryKey"], {"inputs": PROBE}).status_code == 200, "the secondary key kept working"

    tok_ep = endpoint(server, tmp_path, name="token-ep", auth_mode="aml_token")
    deploy(server, tmp_path, "blue", f"model:\n  path: {copy_model(tmp_path, 'iris_tree')}", "token-ep", "--all-traffic")
    creds = keys(server, "token-ep")
    assert creds["tokenType"] == "Bearer" and creds["expiryTimeUtc"] > time.time()
    assert score(tok_ep["scoring_uri"], creds["accessToken"], {"inputs": PROBE}).status_code == 200
    # A key of another endpoint, or that endpoint's token, is not a token of this one.
    assert score(tok_ep["scoring_uri"], new["primaryKey"], {"inputs": PROBE}).status_code == 401
    forged = creds["accessToken"].rsplit(".", 1)[0] + ".00"
    assert score(tok_ep["scoring_uri"], forged, {"inputs": PROBE}).status_code == 401
    # Regenerating a token endpoint's keys replaces its signing secret: old tokens stop working.
    ok(server, "online-endpoint", "regenerate-keys", "-n", "token-ep")
    assert score(tok_ep["scoring_uri"], creds["accessToken"], {"inputs": PROBE}).status_code == 401
    fresh = keys(server, "token-ep")["accessToken"]
    assert score(tok_ep["scoring_uri"], fresh, {"inputs": PROBE}).status_code == 200


def test_a_rolling_update_drops_no_request(server, tmp_path):
    ep = endpoint(server, tmp_path)
    deploy(
        server,
        tmp_path,
        "blue",
        f"model:\n  path: {copy_model(tmp_path, 'iris_logreg')}",
        "iris-ep",
        "--all-traffic",
        extra="request_settings:\n  max_concurrent_requests_per_instance: 4\n",
    )
    uri, k = ep["scoring_uri"], keys(server)["primaryKey"]
    statuses, stop = [], threading.Event()

    def hammer():
        s = requests.Session()
        while not stop.is_set():
            statuses.append(s.post(uri, json={"inputs": PROBE}, headers={"Authorization": f"Bearer {k}"}).status_code)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        tree = copy_model(tmp_path, "iris_tree")
        spec = write(
            tmp_path / "blue-v2.yml",
            f"name: blue\nendpoint_name: iris-ep\nmodel:\n  path: {tree}\ninstance_count: 2\n"
            "request_settings:\n  max_concurrent_requests_per_instance: 4\n",
        )
        updated = json.loads(ok(server, "-o", "json", "online-deployment", "update", "-f", str(spec)).stdout)
        assert updated["instance_count"] == 2
        time.sleep(0.3)
        ok(server, "online-deployment", "update", "-n", "blue", "-e", "iris-ep", "--set", "instance_count=3")
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert len(statuses) > 50
    assert set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    shown = json.loads(ok(server, "-o", "json", "online-deployment", "show", "-e", "iris-ep", "-n", "blue").stdout)
    assert shown["instance_count"] == 3 and shown["provisioning_state"] == "Succeeded"
    # A failed update keeps the previous revision serving and says why.
    broken = write(tmp_path / "broken.onnx", "not a model")
    spec = write(tmp_path / "blue-v3.yml", f"name: blue\nendpoint_name: iris-ep\nmodel:\n  path: {broken}\n")
    out = kiln(server, "online-deployment", "update", "-f", str(spec))
    assert out.returncode != 0 and "failed" in out.stderr
    shown = json.loads(ok(server, "-o", "json", "online-deployment", "show", "-e", "iris-ep", "-n", "blue").stdout)
    assert shown["provisioning_state"] == "Failed" and "previous revision keeps serving" in shown["message"]
    assert score(uri, k, {"inputs": PROBE}).status_code == 200


# ---- Python workers: MLflow models and scoring scripts ----------------------------------------


@pytest.fixture(scope="module")
def worker_cache(tmp_path_factory):
    # Shared by the module: uv and the environments it builds are made once.
    return tmp_path_factory.mktemp("kiln-serving-cache")


@pytest.fixture
def wserver(tmp_path, worker_cache, monkeypatch):
    import sys

    import mlflow

    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    s = KilnServer(tmp_path / "data", env={"PATH": path, "KILN_CACHE_DIR": str(worker_cache)}).start()
    # The mlflow client points at this server; its fluent API remembers the active experiment
    # across servers, so start on "0".
    monkeypatch.setenv("MLFLOW_TRACKING_URI", s.url)
    mlflow.set_tracking_uri(s.url)
    mlflow.set_experiment(experiment_id="0")
    yield s
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    s.stop()


def sklearn_folder(tmp_path):
    """A joblib model in a folder named `model`, as Azure ML's samples lay it out."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    folder = tmp_path / "model"
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(X, y), folder / "model.pkl")
    return folder


# The deployment spec lines of `sklearn_folder`'s model served by SCORE_PY on the host's Python.
SCRIPT_DEPLOYMENT = "model:\n  path: ./model\ncode_configuration: {code: ./code, scoring_script: score.py}\nenvironment: {image: python}"


def worker_pids(data_dir):
    """Processes started under a server's data folder: its workers and their launchers."""
    return subprocess.run(["pgrep", "-f", str(data_dir)], capture_output=True, text=True).stdout.split()


SCORE_PY = """
import json, os, joblib

def init():
    global model
    # AZUREML_MODEL_DIR holds the model folder under its own name, as in Azure ML.
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "model.pkl"))
    print("init: loaded", os.environ["AZUREML_MODEL_DIR"], flush=True)

def run(raw_data):
    data = json.loads(raw_data)
    if data.get("crash"):
        os._exit(3)
    if data.get("fail"):
        raise ValueError("bad rows")
    return model.predict(data["data"]).tolist()
"""


def test_mlflow_model_logged_with_the_client_is_registered_deployed_and_scored(wserver, tmp_path):
    import mlflow
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    with mlflow.start_run():
        mlflow.sklearn.log_model(model, name="model", registered_model_name="iris-sk", input_example=X[:2])
    ep = endpoint(wserver, tmp_path, name="sk-ep")
    # No environment: the model's own (requirements.txt, python_env.yaml) is built with uv.
    dep = deploy(wserver, tmp_path, "blue", "model: azureml:iris-sk:1", "sk-ep", "--all-traffic")
    assert dep["runtime"] == "mlflow" and dep["provisioning_state"] == "Succeeded", dep
    assert dep["environment"] is None
    k = keys(wserver, "sk-ep")["primaryKey"]
    rows = X.iloc[[0, 75, 149]]
    want = model.predict(rows).tolist()
    split = {"dataframe_split": {"columns": list(X.columns), "data": rows.values.tolist()}}
    r = score(ep["scoring_uri"], k, split)
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": want}, "the answer is what mlflow models serve gives"
    records = {"dataframe_records": rows.to_dict(orient="records")}
    assert score(ep["scoring_uri"], k, records).json() == {"predictions": want}
    # MLflow's own schema enforcement answers a request missing a column.
    r = score(ep["scoring_uri"], k, {"dataframe_split": {"columns": ["nope"], "data": [[1.0]]}})
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] in ("BAD_REQUEST", "INVALID_PARAMETER_VALUE")
    r = score(ep["scoring_uri"], k, {"data": [[1, 2, 3, 4]]})
    assert r.status_code == 400 and "dataframe_split" in r.json()["message"]
    logs = ok(wserver, "online-deployment", "get-logs", "-e", "sk-ep", "-n", "blue").stdout
    assert "[kiln-worker] ready" in logs and "environment" in logs


def test_scoring_script_deployment_with_azureml_model_dir(wserver, tmp_path):
    sklearn_folder(tmp_path)
    write(tmp_path / "onlinescoring" / "score.py", SCORE_PY)
    ep = endpoint(wserver, tmp_path, name="script-ep")
    dep = deploy(
        wserver,
        tmp_path,
        "blue",
        "model:\n  path: ./model\ncode_configuration:\n  code: ./onlinescoring\n  scoring_script: score.py\n"
        "environment:\n  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest",
        "script-ep",
        "--all-traffic",
        "--set",
        "instance_count=2",
        extra="request_settings: {max_concurrent_requests_per_instance: 2}\n",
    )
    assert dep["runtime"] == "scoring_script" and dep["ready_instances"] == 2, dep
    req = write(tmp_path / "sample-request.json", json.dumps({"data": PROBE}))
    out = ok(wserver, "online-endpoint", "invoke", "-n", "script-ep", "--request-file", str(req))
    assert json.loads(out.stdout) == [0, 1, 2]
    k = keys(wserver, "script-ep")["primaryKey"]
    r = score(ep["scoring_uri"], k, {"data": PROBE, "fail": True})
    assert r.status_code == 500 and "run() raised ValueError: bad rows" in r.json()["message"]
    logs = ok(wserver, "online-deployment", "get-logs", "-e", "script-ep", "-n", "blue").stdout
    assert "[instance 0] init: loaded" in logs and "[instance 1] init: loaded" in logs
    assert "azureml-models/model/1" in logs


def test_a_crashing_scoring_script_marks_the_deployment_unhealthy_not_the_server_hung(wserver, tmp_path):
    sklearn_folder(tmp_path)
    write(tmp_path / "code" / "score.py", SCORE_PY)
    write(tmp_path / "broken" / "score.py", "def init():\n    raise ValueError('the model file is missing')\n\ndef run(raw):\n    return 1\n")
    ep = endpoint(wserver, tmp_path, name="crash-ep")
    deploy(wserver, tmp_path, "blue", f"model:\n  path: {copy_model(tmp_path, 'iris_tree')}", "crash-ep", "--all-traffic")
    spec = write(
        tmp_path / "broken.yml",
        "name: broken\nendpoint_name: crash-ep\ncode_configuration: {code: ./broken, scoring_script: score.py}\n"
        "environment: {image: python}\n",
    )
    out = kiln(wserver, "online-deployment", "create", "-f", str(spec))
    assert out.returncode != 0
    assert "exited before it was ready" in out.stderr and "ValueError: the model file is missing" in out.stderr
    shown = json.loads(ok(wserver, "-o", "json", "online-deployment", "show", "-e", "crash-ep", "-n", "broken").stdout)
    assert shown["provisioning_state"] == "Failed" and "the model file is missing" in shown["message"]

    deploy(
        wserver,
        tmp_path,
        "crashy",
        SCRIPT_DEPLOYMENT,
        "crash-ep",
    )
    k, uri = keys(wserver, "crash-ep")["primaryKey"], ep["scoring_uri"]
    to_crashy = {"azureml-model-deployment": "crashy"}
    assert score(uri, k, {"data": PROBE}, **to_crashy).json() == [0, 1, 2]
    r = score(uri, k, {"data": PROBE, "crash": True}, **to_crashy)
    assert r.status_code == 502 and r.json()["error_code"] == "WORKER_FAILED"
    # While it restarts, requests are answered at once (503, saying why), not left hanging.
    r = score(uri, k, {"data": PROBE}, **to_crashy)
    assert r.status_code in (200, 503), r.text
    if r.status_code == 503:
        message = r.json()["message"]
        assert "no healthy instance" in message and ("failed while scoring" in message or "exited" in message)
    # The other deployment never noticed.
    assert score(uri, k, {"inputs": PROBE}).status_code == 200
    # And the crashed instance comes back.
    wait_until(lambda: score(uri, k, {"data": PROBE}, **to_crashy).status_code == 200, timeout=30)
    # Each restart gets a fresh folder; only the current one and the one before are kept.
    for _ in range(2):
        assert score(uri, k, {"data": PROBE, "crash": True}, **to_crashy).status_code == 502
        wait_until(lambda: score(uri, k, {"data": PROBE}, **to_crashy).status_code == 200, timeout=30)
    generations = list((tmp_path / "data" / "endpoints" / "crash-ep" / "crashy" / "workers").iterdir())
    assert len(generations) == 1
    assert sorted(p.name for p in generations[0].iterdir() if p.is_dir()) == ["0-2", "0-3"]


def test_python_workers_outlive_the_server_threads_that_started_them(wserver, tmp_path):
    """A worker's launcher once got the server's thread-death signal: large run searches move
    tokio's workers to fresh threads, the old ones end 10 s later, and a healthy worker
    started from one of them was canceled."""
    sklearn_folder(tmp_path)
    write(tmp_path / "code" / "score.py", SCORE_PY)
    ep = endpoint(wserver, tmp_path, name="calm-ep")
    deploy(
        wserver,
        tmp_path,
        "blue",
        SCRIPT_DEPLOYMENT,
        "calm-ep",
        "--all-traffic",
    )
    k, uri = keys(wserver, "calm-ep")["primaryKey"], ep["scoring_uri"]
    assert score(uri, k, {"data": PROBE}).json() == [0, 1, 2]
    workers = worker_pids(wserver.data_dir)

    def large_search():
        body = {"experiment_ids": ["0"], "max_results": 5000}
        assert wserver.api("POST", "/api/2.0/mlflow/runs/search", json=body).status_code == 200

    for _ in range(3):
        threads = [threading.Thread(target=large_search) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    time.sleep(12)  # past tokio's 10 s keep-alive of an idle pool thread
    assert score(uri, k, {"data": PROBE}).json() == [0, 1, 2]
    now = worker_pids(wserver.data_dir)
    assert now == workers, "the worker was restarted"


def test_python_deployments_come_back_after_a_restart_and_die_with_the_server(tmp_path, worker_cache):
    import sys

    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    env = {"PATH": path, "KILN_CACHE_DIR": str(worker_cache)}
    data = tmp_path / "data"
    server = KilnServer(data, env=env).start()
    try:
        sklearn_folder(tmp_path)
        write(tmp_path / "code" / "score.py", SCORE_PY)
        ep = endpoint(server, tmp_path, name="back-ep")
        deploy(
            server,
            tmp_path,
            "blue",
            SCRIPT_DEPLOYMENT,
            "back-ep",
            "--all-traffic",
        )
        k = keys(server, "back-ep")["primaryKey"]
        assert score(ep["scoring_uri"], k, {"data": PROBE}).json() == [0, 1, 2]
        workers = worker_pids(data)
        assert workers, "the worker runs under the data folder"
        server.kill9()
        # The launcher is told when the server dies, and stops its worker.
        wait_until(lambda: not worker_pids(data), timeout=20)
        server = KilnServer(data, env=env).start()
        uri = f"{server.url}/endpoints/back-ep/score"
        wait_until(lambda: score(uri, k, {"data": PROBE}).status_code == 200, timeout=60)
        assert score(uri, k, {"data": PROBE}).json() == [0, 1, 2]
    finally:
        server.stop()
    # A server stopped normally stops its workers too.
    wait_until(lambda: not worker_pids(data), timeout=20)


# ---- Batch endpoints ------------------------------------------------------------------------


def csv_folder(tmp_path, n_files=5, rows=4):
    from sklearn.datasets import load_iris

    X, _ = load_iris(return_X_y=True, as_frame=True)
    folder = tmp_path / "heart-data"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_files):
        X.iloc[i * 30 : i * 30 + rows].to_csv(folder / f"part-{i:02d}.csv", index=False)
    return folder, X


BATCH_SCORE_PY = """
import os, joblib
import pandas as pd

def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "model.pkl"))

def run(mini_batch):
    rows = []
    for path in mini_batch:
        if "part-03" in path and os.environ.get("FAIL_PART_03"):
            raise ValueError("cannot read " + os.path.basename(path))
        df = pd.read_csv(path)
        for p in model.predict(df.values):
            rows.append([os.path.basename(path), int(p)])
    return pd.DataFrame(rows, columns=["file", "prediction"])
"""


def wait_job(server, name, timeout=180):
    job = {}

    def done():
        nonlocal job
        job = server.api("GET", f"/api/v1/jobs/{name}").json()
        return job["status"] in ("Completed", "Failed", "Canceled")

    wait_until(done, timeout=timeout)
    return job


def test_batch_endpoint_scores_a_folder_of_csv_files_with_an_mlflow_model(wserver, tmp_path):
    import mlflow
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    folder, X = csv_folder(tmp_path)
    _, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    with mlflow.start_run():
        mlflow.sklearn.log_model(model, name="model", registered_model_name="iris-batch", input_example=X[:2])
    write(tmp_path / "endpoint.yml", "$schema: https://azuremlschemas.azureedge.net/latest/batchEndpoint.schema.json\nname: iris-batch-ep\ndescription: iris in bulk\n")
    ok(wserver, "batch-endpoint", "create", "-f", str(tmp_path / "endpoint.yml"))
    write(
        tmp_path / "deployment.yml",
        "$schema: https://azuremlschemas.azureedge.net/latest/modelBatchDeployment.schema.json\n"
        "name: classifier\nendpoint_name: iris-batch-ep\ntype: model\nmodel: azureml:iris-batch:1\n"
        "compute: azureml:batch-cluster\nresources: {instance_count: 1}\n"
        "settings:\n  max_concurrency_per_instance: 2\n  mini_batch_size: 2\n  output_action: append_row\n"
        "  output_file_name: predictions.csv\n  retry_settings: {max_retries: 1, timeout: 60}\n  error_threshold: -1\n",
    )
    dep = json.loads(ok(wserver, "-o", "json", "batch-deployment", "create", "-f", str(tmp_path / "deployment.yml"), "--set-default").stdout)
    assert dep["settings"]["mini_batch_size"] == 2 and dep["environment"] == "the model's environment"
    shown = json.loads(ok(wserver, "-o", "json", "batch-endpoint", "show", "-n", "iris-batch-ep").stdout)
    assert shown["default_deployment"] == "classifier"

    out = ok(wserver, "-o", "json", "batch-endpoint", "invoke", "-n", "iris-batch-ep", "--input", str(folder), "--input-type", "uri_folder")
    job = json.loads(out.stdout)
    done = wait_job(wserver, job["name"], timeout=300)
    log = wserver.api("GET", f"/api/v1/jobs/{job['name']}/log").text
    assert done["status"] == "Completed", log
    assert "5 files in 3 mini-batches" in log and "5 files scored, 0 failed, 20 rows written" in log
    dl = tmp_path / "download"
    ok(wserver, "job", "download", "-n", job["name"], "--output-name", "score", "--download-path", str(dl))
    found = list(dl.rglob("predictions.csv"))
    assert len(found) == 1, list(dl.rglob("*"))
    lines = found[0].read_text().splitlines()
    assert len(lines) == 20
    want = model.predict(X.iloc[[i * 30 + r for i in range(5) for r in range(4)]]).tolist()
    assert [int(line.split(",")[2]) for line in lines] == want
    assert lines[0].startswith("part-00.csv,0,")
    jobs = json.loads(ok(wserver, "-o", "json", "batch-endpoint", "list-jobs", "-n", "iris-batch-ep").stdout)
    assert [j["name"] for j in jobs] == [job["name"]]


def test_batch_scoring_script_retries_and_error_threshold(wserver, tmp_path):
    folder, _ = csv_folder(tmp_path, n_files=4, rows=3)
    sklearn_folder(tmp_path)
    write(tmp_path / "code" / "batch_driver.py", BATCH_SCORE_PY)
    write(tmp_path / "ep.yml", "name: script-batch\n")
    ok(wserver, "batch-endpoint", "create", "-f", str(tmp_path / "ep.yml"))
    spec = (
        "name: scorer\nendpoint_name: script-batch\nmodel:\n  path: ./model\n"
        "code_configuration: {code: ./code, scoring_script: batch_driver.py}\nenvironment: {image: python}\n"
        "settings:\n  mini_batch_size: 1\n  output_file_name: out.csv\n  retry_settings: {max_retries: 1}\n"
        "  error_threshold: {threshold}\n  environment_variables: {{FAIL_PART_03: '1'}}\n"
    )
    write(tmp_path / "d.yml", spec.replace("{threshold}", "-1").replace("{{", "{").replace("}}", "}"))
    ok(wserver, "batch-deployment", "create", "-f", str(tmp_path / "d.yml"))
    out = ok(wserver, "-o", "json", "batch-endpoint", "invoke", "-n", "script-batch", "--input", str(folder), "--set", "output_file_name=scores.csv")
    job = wait_job(wserver, json.loads(out.stdout)["name"])
    log = wserver.api("GET", f"/api/v1/jobs/{job['name']}/log").text
    assert job["status"] == "Completed", log
    assert "retry 1 of 1" in log and "ValueError: cannot read part-03.csv" in log
    assert "3 files scored, 1 failed, 9 rows written" in log

    # With error_threshold 0 the failed file fails the job.
    write(tmp_path / "d.yml", spec.replace("{threshold}", "0").replace("{{", "{").replace("}}", "}"))
    ok(wserver, "batch-deployment", "update", "-f", str(tmp_path / "d.yml"))
    out = ok(wserver, "-o", "json", "batch-endpoint", "invoke", "-n", "script-batch", "--input", str(folder))
    job = wait_job(wserver, json.loads(out.stdout)["name"])
    assert job["status"] == "Failed"
    assert "more than error_threshold 0" in wserver.api("GET", f"/api/v1/jobs/{job['name']}/log").text

    out = kiln(wserver, "batch-endpoint", "invoke", "-n", "script-batch", "--input", str(tmp_path / "missing"))
    assert out.returncode != 0 and "does not exist" in out.stderr
    out = kiln(wserver, "batch-endpoint", "invoke", "-n", "nope", "--input", "azureml:x:1")
    assert out.returncode != 0 and "batch endpoint 'nope' does not exist" in out.stderr


def test_batch_summary_only_leaves_the_output_to_the_script(wserver, tmp_path):
    folder, _ = csv_folder(tmp_path, n_files=3, rows=2)
    sklearn_folder(tmp_path)
    write(
        tmp_path / "code" / "score.py",
        "import os\n\ndef init():\n    pass\n\ndef run(mini_batch):\n"
        "    out = os.environ['AZUREML_BI_OUTPUT_PATH']\n"
        "    for p in mini_batch:\n"
        "        with open(os.path.join(out, os.path.basename(p) + '.done'), 'w') as f:\n"
        "            f.write('scored')\n"
        "    return [os.path.basename(p) for p in mini_batch]\n",
    )
    write(tmp_path / "ep.yml", "name: summary-batch\n")
    ok(wserver, "batch-endpoint", "create", "-f", str(tmp_path / "ep.yml"))
    write(
        tmp_path / "d.yml",
        "name: writer\nendpoint_name: summary-batch\nmodel:\n  path: ./model\n"
        "code_configuration: {code: ./code, scoring_script: score.py}\nenvironment: {image: python}\n"
        "settings: {output_action: summary_only, mini_batch_size: 2}\n",
    )
    ok(wserver, "batch-deployment", "create", "-f", str(tmp_path / "d.yml"))
    out = ok(wserver, "-o", "json", "batch-endpoint", "invoke", "-n", "summary-batch", "--input", str(folder))
    job = wait_job(wserver, json.loads(out.stdout)["name"])
    log = wserver.api("GET", f"/api/v1/jobs/{job['name']}/log").text
    assert job["status"] == "Completed", log
    assert "3 files scored, 0 failed, 0 rows written" in log
    dl = tmp_path / "download"
    ok(wserver, "job", "download", "-n", job["name"], "--output-name", "score", "--download-path", str(dl))
    names = sorted(p.name for p in dl.rglob("*") if p.is_file())
    assert names == ["part-00.csv.done", "part-01.csv.done", "part-02.csv.done"], names


def test_a_rolling_update_of_a_python_deployment_drops_no_request(wserver, tmp_path):
    for version in ("v1", "v2"):
        write(
            tmp_path / version / "score.py",
            f"import time\n\ndef init():\n    time.sleep(0.5)\n\ndef run(raw):\n    return '{version}'\n",
        )
    ep = endpoint(wserver, tmp_path, name="roll-ep")
    spec = "name: blue\nendpoint_name: roll-ep\ncode_configuration: {code: ./CODE, scoring_script: score.py}\nenvironment: {image: python}\n"
    write(tmp_path / "blue.yml", spec.replace("CODE", "v1"))
    ok(wserver, "online-deployment", "create", "-f", str(tmp_path / "blue.yml"), "--all-traffic")
    uri, k = ep["scoring_uri"], keys(wserver, "roll-ep")["primaryKey"]
    answers, stop = [], threading.Event()

    def hammer():
        s = requests.Session()
        while not stop.is_set():
            r = s.post(uri, data="{}", headers={"Authorization": f"Bearer {k}", "Content-Type": "application/json"})
            answers.append((r.status_code, r.text))

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        write(tmp_path / "blue.yml", spec.replace("CODE", "v2"))
        ok(wserver, "online-deployment", "update", "-f", str(tmp_path / "blue.yml"))
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    statuses = {s for s, _ in answers}
    assert statuses == {200}, {s: sum(1 for x, _ in answers if x == s) for s in statuses}
    bodies = [b for _, b in answers]
    assert bodies[0] == '"v1"' and bodies[-1] == '"v2"', (bodies[0], bodies[-1])
    # Once v2 answered, v1 never did again: the switch is one swap.
    first_v2 = bodies.index('"v2"')
    assert '"v1"' not in bodies[first_v2 + 2 :], "old answers after the switch (beyond the requests in flight)"
