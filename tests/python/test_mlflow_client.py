"""The stock mlflow client, unchanged, against a kiln server."""

import hashlib
import os

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException, RestException
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.ensemble import RandomForestRegressor

from conftest import unique


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, y


def test_default_experiment_exists_and_experiments_round_trip(tracking):
    client = MlflowClient()
    assert client.get_experiment("0").name == "Default"
    name = unique("exp")
    exp_id = client.create_experiment(name, tags={"team": "vision"})
    exp = client.get_experiment_by_name(name)
    assert exp.experiment_id == exp_id and exp.tags == {"team": "vision"}
    assert exp.artifact_location.endswith("/" + exp_id)
    client.rename_experiment(exp_id, name + "-renamed")
    assert client.get_experiment(exp_id).name == name + "-renamed"
    client.delete_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "deleted"
    active = [e.experiment_id for e in client.search_experiments()]
    assert exp_id not in active
    deleted = client.search_experiments(view_type=mlflow.entities.ViewType.DELETED_ONLY)
    assert [e.experiment_id for e in deleted] == [exp_id]
    client.restore_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "active"
    with pytest.raises(MlflowException, match="already exists"):
        client.create_experiment(name + "-renamed")
    assert client.get_experiment_by_name("no-such-experiment") is None


def test_sklearn_autolog_training_script(tracking, iris):
    X, y = iris
    mlflow.set_experiment(unique("autolog"))
    mlflow.sklearn.autolog()
    try:
        with mlflow.start_run() as run:
            model = RandomForestRegressor(n_estimators=5, random_state=0).fit(X, y)
            model.score(X, y)
    finally:
        mlflow.sklearn.autolog(disable=True)
    got = MlflowClient().get_run(run.info.run_id)
    assert got.info.status == "FINISHED"
    assert got.data.params["n_estimators"] == "5"
    assert "training_score" in got.data.metrics
    assert got.data.tags["estimator_name"] == "RandomForestRegressor"
    assert got.inputs.dataset_inputs, "autolog logs the training dataset"
    models = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")
    assert len(models) == 1 and models[0].source_run_id == run.info.run_id
    loaded = mlflow.pyfunc.load_model(f"models:/{models[0].model_id}")
    assert np.allclose(loaded.predict(X.iloc[:5]), model.predict(X.iloc[:5]))


def test_log_model_load_and_predict_by_every_uri(tracking, iris):
    X, y = iris
    model = LogisticRegression(max_iter=300).fit(X, y)
    name = unique("iris")
    mlflow.set_experiment(unique("models"))
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(model, name="model", input_example=X.iloc[:2], registered_model_name=name)
    expected = model.predict(X.iloc[:10])
    client = MlflowClient()
    client.set_registered_model_alias(name, "champion", "1")
    for uri in [
        f"runs:/{run.info.run_id}/model",
        info.model_uri,
        f"models:/{name}/1",
        f"models:/{name}@champion",
        f"models:/{name}/latest",
    ]:
        assert (mlflow.pyfunc.load_model(uri).predict(X.iloc[:10]) == expected).all(), uri
    assert client.get_model_version_by_alias(name, "champion").version == "1"


def test_registry_versions_stages_aliases_and_search(tracking):
    client = MlflowClient()
    name = unique("reg")
    client.create_registered_model(name, tags={"owner": "me"}, description="first")
    with mlflow.start_run() as run:
        mlflow.log_text("x", "model/file.txt")
    for _ in range(3):
        client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    client.transition_model_version_stage(name, "1", "production")
    client.transition_model_version_stage(name, "2", "Production", archive_existing_versions=True)
    assert client.get_model_version(name, "1").current_stage == "Archived"
    assert [v.version for v in client.get_latest_versions(name, stages=["Production"])] == ["2"]
    client.set_registered_model_alias(name, "prod", "2")
    client.update_model_version(name, "2", description="the good one")
    client.set_model_version_tag(name, "2", "validated", "yes")
    v2 = client.get_model_version(name, "2")
    assert v2.aliases == ["prod"] and v2.tags == {"validated": "yes"} and v2.description == "the good one"
    assert client.get_model_version_download_uri(name, "2").endswith("/artifacts/model")
    versions = client.search_model_versions(f"name = '{name}'")
    assert sorted(v.version for v in versions) == ["1", "2", "3"]
    found = client.search_registered_models(filter_string=f"name LIKE '{name[:6]}%'")
    assert name in [m.name for m in found]
    client.rename_registered_model(name, name + "-new")
    assert client.get_registered_model(name + "-new").aliases == {"prod": "2"}
    client.delete_model_version(name + "-new", "3")
    client.delete_registered_model_alias(name + "-new", "prod")
    client.delete_registered_model(name + "-new")
    with pytest.raises(MlflowException, match="not found"):
        client.get_registered_model(name + "-new")


def test_artifacts_round_trip_byte_for_byte(tracking, tmp_path):
    src = tmp_path / "src"
    (src / "nested" / "deeper").mkdir(parents=True)
    rng = np.random.default_rng(0)
    files = {
        "a.bin": rng.bytes(3 * 1024 * 1024 + 17),
        "nested/b.txt": "héllo wörld\n".encode(),
        "nested/deeper/empty": b"",
        "nested/deeper/c.json": b'{"x": 1}',
    }
    for rel, data in files.items():
        (src / rel).write_bytes(data)
    big = tmp_path / "big.bin"
    big.write_bytes(rng.bytes(20 * 1024 * 1024))
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(src), "data")
        mlflow.log_artifact(str(big))
    client = MlflowClient()
    listing = {f.path: f for f in client.list_artifacts(run.info.run_id, "data")}
    assert set(listing) == {"data/a.bin", "data/nested"} and listing["data/nested"].is_dir
    assert listing["data/a.bin"].file_size == len(files["a.bin"])
    out = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="data", dst_path=str(tmp_path / "dl"))
    for rel, data in files.items():
        with open(os.path.join(out, rel), "rb") as f:
            assert f.read() == data, rel
    got = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="big.bin", dst_path=str(tmp_path / "dl2"))
    digest = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()
    assert digest(got) == digest(big)


def test_search_filters_ordering_and_pagination(tracking):
    exp_id = mlflow.create_experiment(unique("search"))
    client = MlflowClient()
    for i in range(12):
        with mlflow.start_run(experiment_id=exp_id, run_name=f"run-{i:02d}"):
            mlflow.log_param("family", "even" if i % 2 == 0 else "odd")
            mlflow.log_metric("rmse", 1.0 / (i + 1))
            mlflow.log_metric("rmse", 10.0 - i, step=5)  # the latest step wins
            mlflow.set_tag("stage", f"Stage{i % 3}")
    runs = client.search_runs([exp_id], "metrics.rmse > 5 and params.family = 'even'", order_by=["metrics.rmse DESC"])
    assert [r.data.metrics["rmse"] for r in runs] == [10.0, 8.0, 6.0]
    assert len(client.search_runs([exp_id], "tags.stage LIKE 'stage%'")) == 0
    assert len(client.search_runs([exp_id], "tags.stage ILIKE 'stage%'")) == 12
    assert len(client.search_runs([exp_id], "tags.missing IS NULL")) == 12
    with pytest.raises(MlflowException, match="Invalid comparator 'IN'"):
        client.search_runs([exp_id], "attributes.run_name IN ('run-01', 'run-02')")
    named = client.search_runs([exp_id], "attributes.run_name = 'run-03'")
    assert [r.info.run_name for r in named] == ["run-03"]
    ids = [r.info.run_id for r in client.search_runs([exp_id])[:2]]
    assert {r.info.run_id for r in client.search_runs([exp_id], f"attributes.run_id IN ('{ids[0]}', '{ids[1]}')")} == set(ids)
    ordered = client.search_runs([exp_id], order_by=["params.family ASC", "metrics.rmse ASC"])
    assert [r.data.params["family"] for r in ordered] == ["even"] * 6 + ["odd"] * 6
    seen, token = [], None
    while True:
        page = client.search_runs([exp_id], max_results=5, page_token=token)
        seen += [r.info.run_id for r in page]
        token = page.token
        if not token:
            break
    assert len(seen) == 12 and len(set(seen)) == 12
    df = mlflow.search_runs([exp_id], filter_string="metrics.rmse < 3")
    assert sorted(df["tags.mlflow.runName"]) == ["run-08", "run-09", "run-10", "run-11"]
    with pytest.raises(MlflowException, match="Invalid clause"):
        client.search_runs([exp_id], "metrics.a > 1 OR metrics.b > 1")


def test_metric_history_steps_and_timestamps(tracking):
    client = MlflowClient()
    with mlflow.start_run() as run:
        for step in range(30):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metric("odd", float("nan"))
        mlflow.log_metric("huge", float("inf"))
        mlflow.log_metric("neg", -1.0, step=-2)
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == list(range(30))
    data = client.get_run(run.info.run_id).data
    assert np.isnan(data.metrics["odd"])
    assert data.metrics["huge"] >= 1.7976931348623157e308
    assert client.get_metric_history(run.info.run_id, "neg")[0].step == -2
    assert client.get_metric_history(run.info.run_id, "nothing") == []


def test_parent_child_runs_and_lifecycle(tracking):
    client = MlflowClient()
    with mlflow.start_run() as parent:
        with mlflow.start_run(nested=True) as child:
            pass
    got = client.get_run(child.info.run_id)
    assert got.data.tags["mlflow.parentRunId"] == parent.info.run_id
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert [r.info.run_id for r in children] == [child.info.run_id]
    client.delete_run(child.info.run_id)
    assert client.get_run(child.info.run_id).info.lifecycle_stage == "deleted"
    with pytest.raises(MlflowException, match="must be in the 'active' state"):
        client.log_param(child.info.run_id, "p", "1")
    client.restore_run(child.info.run_id)
    client.set_terminated(child.info.run_id, status="KILLED")
    assert client.get_run(child.info.run_id).info.status == "KILLED"
    client.update_run(child.info.run_id, name="renamed")
    assert client.get_run(child.info.run_id).data.tags["mlflow.runName"] == "renamed"
    client.set_tag(child.info.run_id, "t", "v")
    client.delete_tag(child.info.run_id, "t")
    assert "t" not in client.get_run(child.info.run_id).data.tags


def test_validation_errors_match_mlflow(tracking):
    client = MlflowClient()
    run = client.create_run("0")
    rid = run.info.run_id
    client.log_param(rid, "p", "1")
    client.log_param(rid, "p", "1")
    with pytest.raises(MlflowException) as e:
        client.log_param(rid, "p", "2")
    assert "Changing param values is not allowed. Param with key='p' was already logged with value='1'" in str(e.value)
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    url = tracking.url + "/api/2.0/mlflow"
    r = tracking.api("POST", "/api/2.0/mlflow/runs/log-batch",
                     json={"run_id": rid, "params": [{"key": f"k{i}", "value": "v"} for i in range(101)]})
    assert r.status_code == 400
    assert r.json()["message"].startswith("A batch logging request can contain at most 100 params. Got 101 params.")
    r = tracking.api("POST", "/api/2.0/mlflow/runs/log-parameter", json={"run_id": rid, "key": "a@b", "value": "x"})
    assert r.status_code == 400 and "Names may only contain alphanumerics" in r.json()["message"]
    r = tracking.api("POST", "/api/2.0/mlflow/runs/log-parameter", json={"run_id": rid, "key": "../x", "value": "x"})
    assert r.status_code == 400 and "This name would resolve to '../x'" in r.json()["message"]
    r = tracking.api("GET", "/api/2.0/mlflow/runs/get", params={"run_id": "abc"})
    assert (r.status_code, r.json()["error_code"], r.json()["message"]) == (404, "RESOURCE_DOES_NOT_EXIST", "Run with id=abc not found")
    r = tracking.api("POST", "/api/2.0/mlflow/runs/log-metric", json={"run_id": rid, "key": "m", "value": 1})
    assert r.status_code == 400 and "Missing value for required parameter 'timestamp'" in r.json()["message"]
    r = tracking.api("POST", "/api/2.0/mlflow/runs/create", json={"experiment_id": 31.5})
    assert r.status_code == 400 and "Hint: Value was of type 'float'" in r.json()["message"]
    r = tracking.api("GET", "/api/2.0/mlflow/experiments/get", params={"experiment_id": "abc"})
    assert r.status_code == 400 and "Experiment ID must be a valid integer" in r.json()["message"]
    r = tracking.api("POST", "/api/2.0/mlflow/runs/create", data="{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = tracking.api("POST", "/api/2.0/mlflow/runs/create", data="{}", headers={"Content-Type": "text/plain"})
    assert r.status_code == 400 and "Content-Type must be one of" in r.json()["message"]
    r = tracking.api("GET", "/api/2.0/mlflow/no-such-route")
    assert r.status_code == 404 and not r.headers["content-type"].startswith("application/json")
    for bad in ["0/../../etc/passwd", "0/%2e%2e/%2e%2e/x", "..%2f..%2fsecret"]:
        r = tracking.api("GET", "/api/2.0/mlflow-artifacts/artifacts/" + bad)
        assert r.status_code in (400, 404), bad
        assert r.status_code != 200
    r = tracking.api("PUT", "/api/2.0/mlflow-artifacts/artifacts/0/%2e%2e/%2e%2e/escape.txt", data=b"x")
    assert r.status_code == 400 and r.json()["message"] == "Invalid path"
    r = tracking.api("GET", "/api/2.0/mlflow-artifacts/artifacts", params={"path": "../"})
    assert r.status_code == 400
    r = tracking.api("GET", "/api/2.0/mlflow-artifacts/artifacts/0/nope/artifacts/model")
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_traces_through_the_v3_artifact_path(tracking, monkeypatch):
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    exp_id = mlflow.set_experiment(unique("traces")).experiment_id

    @mlflow.trace
    def double(x):
        return x * 2

    assert double(21) == 42
    trace_id = mlflow.get_last_active_trace_id()
    trace = mlflow.get_trace(trace_id)
    assert trace.info.trace_id == trace_id
    assert [s.name for s in trace.data.spans] == ["double"]
    client = MlflowClient()
    client.set_trace_tag(trace_id, "reviewed", "yes")
    assert mlflow.get_trace(trace_id).info.tags["reviewed"] == "yes"
    client.delete_trace_tag(trace_id, "reviewed")
    found = mlflow.search_traces(locations=[exp_id], return_type="list")
    assert [t.info.trace_id for t in found] == [trace_id]
    assert client.delete_traces(exp_id, trace_ids=[trace_id]) == 1
    assert mlflow.search_traces(locations=[exp_id], return_type="list") == []


def test_multipart_upload_and_ranged_download_when_the_client_asks(tracking, tmp_path, monkeypatch):
    # Lower the client's thresholds so a 9 MiB file goes through the multipart paths.
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", "true")
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE", "1")
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE", str(2 * 1024 * 1024))
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "true")
    monkeypatch.setenv("MLFLOW_MULTIPART_DOWNLOAD_CHUNK_SIZE", str(3 * 1024 * 1024))
    data = np.random.default_rng(1).bytes(9 * 1024 * 1024 + 5)
    src = tmp_path / "weights.bin"
    src.write_bytes(data)
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(src), "big")
    listing = MlflowClient().list_artifacts(run.info.run_id, "big")
    assert [(f.path, f.file_size) for f in listing] == [("big/weights.bin", len(data))]
    out = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="big/weights.bin",
                                              dst_path=str(tmp_path / "dl"))
    assert open(out, "rb").read() == data
    # Nothing of the upload's parts is left behind or visible.
    root = tracking.api("GET", "/api/2.0/mlflow-artifacts/artifacts").json()
    assert all(not f["path"].startswith(".") for f in root.get("files", []))
    url = f"/api/2.0/mlflow-artifacts/artifacts/0/{run.info.run_id}/artifacts/big/weights.bin"
    r = tracking.api("GET", url, headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == data[10:20]
    assert r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    r = tracking.api("GET", url, headers={"Range": f"bytes={len(data) + 10}-"})
    assert r.status_code == 416


def test_wire_shapes_follow_mlflow(tracking):
    api = "/api/2.0/mlflow"
    exp = tracking.api("POST", api + "/experiments/create", json={"name": unique("wire")}).json()["experiment_id"]
    # An empty result is {}: empty lists and unset fields are left out.
    assert tracking.api("POST", api + "/runs/search", json={"experiment_ids": [exp]}).json() == {}
    run = tracking.api("POST", api + "/runs/create", json={"experiment_id": exp, "start_time": "1700000000000"}).json()
    info = run["run"]["info"]
    assert info["start_time"] == 1700000000000 and isinstance(info["start_time"], int)
    assert "end_time" not in info and info["run_id"] == info["run_uuid"]
    assert "outputs" not in run["run"] and run["run"]["inputs"] == {}
    rid = info["run_id"]
    metrics = [{"key": "m", "value": float(i), "timestamp": i, "step": i} for i in range(100)]
    metrics.append({"key": "m", "value": "NaN", "timestamp": 1000, "step": 1000})
    assert tracking.api("POST", api + "/runs/log-batch", json={"run_id": rid, "metrics": metrics}).json() == {}
    got = tracking.api("GET", api + "/runs/get", params={"run_id": rid}).json()["run"]
    assert got["data"]["metrics"] == [{"key": "m", "value": "NaN", "timestamp": 1000, "step": 1000}]
    assert got["outputs"] == {}
    # Bulk-interval sampling keeps the first and last step and at most max_results points.
    r = tracking.api("GET", api + "/metrics/get-history-bulk-interval",
                     params={"run_ids": rid, "metric_key": "m", "max_results": 10})
    steps = [m["step"] for m in r.json()["metrics"]]
    assert len(steps) == 10 and steps[0] == 0 and steps[-1] == 1000 and all(m["run_id"] == rid for m in r.json()["metrics"])
    r = tracking.api("GET", api + "/metrics/get-history-bulk-interval",
                     params={"run_ids": rid, "metric_key": "m", "start_step": 10, "end_step": 19})
    assert [m["step"] for m in r.json()["metrics"]] == list(range(10, 20))
    r = tracking.api("GET", api + "/metrics/get-history-bulk-interval",
                     params={"run_ids": rid, "metric_key": "m", "start_step": 10})
    assert r.status_code == 400
    # History pages carry an opaque token until the last page.
    r = tracking.api("GET", api + "/metrics/get-history", params={"run_id": rid, "metric_key": "m", "max_results": 60})
    first = r.json()
    assert len(first["metrics"]) == 60 and first["next_page_token"]
    r = tracking.api("GET", api + "/metrics/get-history", params={"run_id": rid, "metric_key": "m", "max_results": 60,
                                                                  "page_token": first["next_page_token"]})
    assert len(r.json()["metrics"]) == 41 and "next_page_token" not in r.json()
    # Experiments page too, newest first.
    for i in range(5):
        tracking.api("POST", api + "/experiments/create", json={"name": unique(f"page{i}")})
    seen, token = [], None
    while True:
        body = {"max_results": 2, **({"page_token": token} if token else {})}
        page = tracking.api("POST", api + "/experiments/search", json=body).json()
        seen += [e["experiment_id"] for e in page["experiments"]]
        token = page.get("next_page_token")
        if not token:
            break
    assert len(seen) == len(set(seen)) >= 7 and seen[-1] == "0"
    r = tracking.api("POST", api + "/runs/search", json={"experiment_ids": [exp], "page_token": "garbage!"})
    assert r.status_code == 400
    for path in ["/api/v1/runs/a%00b", api + "/runs/get?run_id=a%00b", api + "/logged-models/m-%00"]:
        assert tracking.api("GET", path).status_code == 400, path


def test_experiment_tags_logged_model_lifecycle_and_registry_paging(tracking):
    client = MlflowClient()
    exp_id = client.create_experiment(unique("lifecycle"))
    client.set_experiment_tag(exp_id, "owner", "ana")
    assert client.get_experiment(exp_id).tags == {"owner": "ana"}
    client.delete_experiment_tag(exp_id, "owner")
    assert client.get_experiment(exp_id).tags == {}
    found = client.search_experiments(filter_string=f"tags.owner = 'ana' and attribute.experiment_id = '{exp_id}'")
    assert found == []

    mlflow.set_experiment(experiment_id=exp_id)
    with mlflow.start_run() as run:
        pass
    model = mlflow.create_external_model(name="ext", source_run_id=run.info.run_id, tags={"stage": "dev"})
    client.set_logged_model_tags(model.model_id, {"stage": "prod", "team": "x"})
    got = client.get_logged_model(model.model_id)
    assert got.tags["stage"] == "prod" and got.tags["team"] == "x"
    client.delete_logged_model_tag(model.model_id, "team")
    assert "team" not in client.get_logged_model(model.model_id).tags
    hits = client.search_logged_models(experiment_ids=[exp_id], filter_string="tags.stage = 'prod'")
    assert [m.model_id for m in hits] == [model.model_id]
    client.delete_logged_model(model.model_id)
    with pytest.raises(MlflowException, match="not found"):
        client.get_logged_model(model.model_id)

    prefix = unique("pg")
    for i in range(5):
        client.create_registered_model(f"{prefix}-{i}")
    names, token = [], None
    while True:
        page = client.search_registered_models(filter_string=f"name LIKE '{prefix}-%'", max_results=2, page_token=token)
        names += [m.name for m in page]
        token = page.token
        if not token:
            break
    assert names == [f"{prefix}-{i}" for i in range(5)]
