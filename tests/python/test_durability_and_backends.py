"""Durability (kill -9), concurrency, and the scale-out backends: PostgreSQL and S3."""

import os
import subprocess
import threading
import uuid

import mlflow
import pytest
import requests
from mlflow import MlflowClient

from conftest import KilnServer, unique


def test_acknowledged_writes_survive_kill_9(kiln_factory, tmp_path):
    data = tmp_path / "durable"
    server = kiln_factory(data_dir=data)
    client = MlflowClient(tracking_uri=server.url)
    exp = client.create_experiment("durable")
    run = client.create_run(exp)
    rid = run.info.run_id
    for i in range(200):
        client.log_metric(rid, "m", float(i), step=i)
    client.log_param(rid, "p", "v")
    client.set_tag(rid, "t", "x")
    payload = os.urandom(100_000)
    requests.put(f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{exp}/{rid}/artifacts/blob.bin", data=payload).raise_for_status()
    server.kill9()

    again = kiln_factory(data_dir=data)
    client = MlflowClient(tracking_uri=again.url)
    got = client.get_run(rid)
    assert got.data.params == {"p": "v"} and got.data.tags["t"] == "x"
    assert len(client.get_metric_history(rid, "m")) == 200
    r = requests.get(f"{again.url}/api/2.0/mlflow-artifacts/artifacts/{exp}/{rid}/artifacts/blob.bin")
    assert r.content == payload


def test_fifty_concurrent_writers_lose_nothing(kiln):
    client = MlflowClient(tracking_uri=kiln.url)
    exp = client.create_experiment(unique("concurrent"))
    shared = client.create_run(exp).info.run_id
    errors = []

    def writer(w):
        try:
            c = MlflowClient(tracking_uri=kiln.url)
            own = c.create_run(exp).info.run_id
            for i in range(10):
                c.log_metric(own, "m", float(i), step=i)
                c.log_metric(shared, "m", float(i), step=w * 100 + i)
            c.log_param(shared, f"p{w}", "v")
        except Exception as e:  # noqa: BLE001 - every failure is reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(client.get_metric_history(shared, "m")) == 500
    assert len(client.get_run(shared).data.params) == 50
    runs = client.search_runs([exp], max_results=1000)
    assert len(runs) == 51
    assert all(len(client.get_metric_history(r.info.run_id, "m")) in (10, 500) for r in runs)


def test_postgresql_metadata_store(kiln_factory, tmp_path):
    base = os.environ.get("KILN_TEST_POSTGRES_URL")
    if not base:
        if os.environ.get("KILN_REQUIRE_POSTGRES"):
            pytest.fail("KILN_REQUIRE_POSTGRES is set but KILN_TEST_POSTGRES_URL is not")
        pytest.skip("no PostgreSQL server given (KILN_TEST_POSTGRES_URL)")
    db = "kiln_py_" + uuid.uuid4().hex[:8]
    host = base.rsplit("/", 1)[0]
    subprocess.run(["psql", base, "-q", "-c", f"CREATE DATABASE {db}"], check=True)
    server = kiln_factory(extra_args=["--store", f"{host}/{db}"])
    client = MlflowClient(tracking_uri=server.url)
    exp = client.create_experiment("on-postgres")
    run = client.create_run(exp)
    client.log_batch(run.info.run_id, metrics=[mlflow.entities.Metric("m", 0.5, 1, 0)], params=[mlflow.entities.Param("p", "1")])
    found = client.search_runs([exp], "metrics.m < 1 and params.p = '1'")
    assert [r.info.run_id for r in found] == [run.info.run_id]
    server.stop()
    again = kiln_factory(extra_args=["--store", f"{host}/{db}"])
    assert MlflowClient(tracking_uri=again.url).get_run(run.info.run_id).data.metrics == {"m": 0.5}


def test_s3_artifact_store(kiln_factory, tmp_path):
    endpoint = os.environ.get("KILN_TEST_S3_ENDPOINT")
    if not endpoint:
        pytest.skip("no S3-compatible server given (KILN_TEST_S3_ENDPOINT)")
    import boto3

    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    bucket = "kiln-" + uuid.uuid4().hex[:8]
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                      region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    server = kiln_factory(extra_args=["--artifacts", f"s3://{bucket}/workspace"],
                          env={**creds, "AWS_ENDPOINT_URL": endpoint})
    mlflow.set_tracking_uri(server.url)
    exp = mlflow.set_experiment(unique("s3")).experiment_id
    try:
        data = os.urandom(12 * 1024 * 1024)  # larger than one PUT: goes multipart
        src = tmp_path / "weights.bin"
        src.write_bytes(data)
        with mlflow.start_run() as run:
            mlflow.log_artifact(str(src), "w")
            mlflow.log_text("hi", "notes/readme.txt")
        out = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="w/weights.bin",
                                                  dst_path=str(tmp_path / "dl"))
        assert open(out, "rb").read() == data
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
        assert f"workspace/{exp}/{run.info.run_id}/artifacts/w/weights.bin" in keys
        listing = MlflowClient().list_artifacts(run.info.run_id)
        assert sorted(f.path for f in listing) == ["notes", "w"]
    finally:
        mlflow.set_tracking_uri(None)
