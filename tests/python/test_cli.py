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


def test_job_validate_reports_file_line_field_without_a_server(tmp_path):
    spec = tmp_path / "job.yml"
    spec.write_text(
        "command: python train.py --lr ${{inputs.lr}} --out ${{outputs.model}}\n"
        "environment: azureml:AzureML-sklearn-1.5@latest\n"
        "inputs:\n"
        "  lr: 0.01\n"
        "  epochs: {type: integer, default: ten}\n"
        "outputs:\n"
        "  model:\n"
    )
    run = lambda *a: subprocess.run([KILN_BIN, "job", "validate", "-f", str(spec), *a],  # noqa: E731
                                    capture_output=True, text=True, timeout=60)
    out = run()
    assert out.returncode == 1
    assert out.stderr.strip() == f"error: {spec}:5:36: inputs.epochs.default: expected an integer, found a string 'ten'"

    out = run("--set", "inputs.epochs.default=10", "--set", "colour=blue", "-o", "json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["valid"] and summary["inputs"] == ["epochs", "lr"] and summary["outputs"] == ["model"]
    assert summary["warnings"] == [f"{spec}: colour: unknown field 'colour' (ignored)"]
    assert "warning:" in out.stderr and "colour" in out.stderr
