"""The kiln CLI's client commands against a running server."""

import json
import subprocess

import mlflow
from mlflow import MlflowClient

from conftest import KILN_BIN


def kiln_cli(server, *args):
    out = subprocess.run([KILN_BIN, "--url", server.url, *args], capture_output=True, text=True, timeout=60)
    return out


def test_cli_lists_and_shows_experiments_runs_and_models(tracking):
    mlflow.set_experiment("cli-exp")
    with mlflow.start_run(run_name="cli-run") as run:
        mlflow.log_metric("acc", 0.91)
        mlflow.log_param("depth", "3")
    client = MlflowClient()
    client.create_registered_model("cli-model", description="for the CLI")
    client.create_model_version("cli-model", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)

    out = kiln_cli(tracking, "experiments", "list")
    assert out.returncode == 0 and "cli-exp" in out.stdout and "Default" in out.stdout

    out = kiln_cli(tracking, "-o", "json", "runs", "list", "--filter", "metrics.acc > 0.9")
    runs = json.loads(out.stdout)
    assert [r["id"] for r in runs] == [run.info.run_id]
    assert runs[0]["metrics"][0] == {"key": "acc", "value": 0.91, "step": 0, "timestamp": runs[0]["metrics"][0]["timestamp"]}

    out = kiln_cli(tracking, "runs", "show", run.info.run_id)
    assert out.returncode == 0 and "acc" in out.stdout and "0.91" in out.stdout and "depth" in out.stdout

    out = kiln_cli(tracking, "-o", "yaml", "models", "show", "cli-model")
    assert out.returncode == 0 and "name: cli-model" in out.stdout and "version: 1" in out.stdout

    out = kiln_cli(tracking, "models", "list")
    assert "cli-model" in out.stdout

    out = kiln_cli(tracking, "runs", "show", "does-not-exist")
    assert out.returncode != 0 and "RESOURCE_DOES_NOT_EXIST" in out.stderr


def test_cli_reports_an_unreachable_server():
    out = subprocess.run([KILN_BIN, "--url", "http://127.0.0.1:9", "experiments", "list"], capture_output=True, text=True)
    assert out.returncode != 0 and "cannot reach the Kiln server" in out.stderr


def test_native_api_serves_its_openapi_document(kiln):
    doc = kiln.api("GET", "/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert "/api/v1/runs" in doc["paths"] and "/api/v1/models/{name}" in doc["paths"]
    r = kiln.api("GET", "/api/v1/runs", params={"filter": "metrics.x > 'a'"})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
