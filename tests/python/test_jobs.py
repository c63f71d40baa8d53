"""Command jobs from Azure ML v2 YAML run for real: `kiln job …` against a `kiln up` server,
with real processes on this machine."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from mlflow import MlflowClient

from conftest import KILN_BIN, KilnServer, wait_until


@pytest.fixture(scope="session")
def job_cache(tmp_path_factory):
    # Shared by the session: uv and built environments are made once.
    return tmp_path_factory.mktemp("kiln-cache")


def job_env(job_cache):
    # Jobs run with the Python first on the server's PATH: this venv's, which has mlflow.
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    return {"PATH": path, "KILN_CACHE_DIR": str(job_cache)}


@pytest.fixture
def server(tmp_path, job_cache):
    s = KilnServer(tmp_path / "data", env=job_env(job_cache)).start()
    yield s
    s.stop()


def kiln(server, *args, timeout=120):
    return subprocess.run([KILN_BIN, "--url", server.url, *args], capture_output=True, text=True, timeout=timeout)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def create(server, spec_file, *args):
    out = kiln(server, "-o", "json", "job", "create", "-f", str(spec_file), *args)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def wait_status(server, name, statuses=("Completed", "Failed", "Canceled"), timeout=120):
    job = {}

    def done():
        nonlocal job
        job = server.api("GET", f"/api/v1/jobs/{name}").json()
        return job["status"] in statuses

    assert wait_until(done, timeout), job
    return job


def test_hello_world_streams_and_keeps_its_outputs(server, tmp_path):
    spec = write(
        tmp_path / "hello-world" / "job.yml",
        """$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: echo "hello world" && echo "to stderr" >&2 && echo "hello" > ./outputs/helloworld.txt
environment:
  image: library/python:latest
compute: azureml:cpu-cluster
""",
    )
    # As in the examples: the cluster is created first (it runs locally, one job at a time).
    out = kiln(server, "compute", "create", "-n", "cpu-cluster", "--type", "amlcompute", "--min-instances", "0", "--max-instances", "1")
    assert out.returncode == 0, out.stderr
    out = kiln(server, "job", "create", "-f", str(spec), "--stream")
    assert out.returncode == 0, out.stderr
    assert "hello world" in out.stdout and "to stderr" in out.stdout
    assert "runs with the host's Python" in out.stdout, "an image-only environment says so in the job log"
    name = next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("name "))
    job = server.api("GET", f"/api/v1/jobs/{name}").json()
    assert job["status"] == "Completed" and job["compute"] == "cpu-cluster"
    assert job["experiment_name"] == "hello-world", "the experiment defaults to the spec's folder name"
    seen = [t["status"] for t in job["transitions"]]
    assert seen == ["NotStarted", "Queued", "Preparing", "Starting", "Running", "Finalizing", "Completed"], seen

    run = MlflowClient(server.url).get_run(name)
    assert run.info.status == "FINISHED" and run.info.end_time

    dl = tmp_path / "dl"
    out = kiln(server, "job", "download", "-n", name, "-p", str(dl))
    assert out.returncode == 0, out.stderr
    assert (dl / "artifacts" / "outputs" / "helloworld.txt").read_text() == "hello\n"
    assert "hello world" in (dl / "artifacts" / "user_logs" / "std_log.txt").read_text()


def test_inputs_outputs_code_env_vars_and_mlflow_logging(server, tmp_path):
    root = tmp_path / "proj"
    write(
        root / "src" / "train.py",
        """import os, sys, mlflow
run_id, exp_id = os.environ["MLFLOW_RUN_ID"], os.environ["MLFLOW_EXPERIMENT_ID"]
lr, n, flag, name, data_file, data_dir, copied, direct, out_dir, out_file = sys.argv[1:]
print("literals", lr, n, flag, name)
print("file", open(data_file).read().strip(), data_file == os.environ["AZURE_ML_INPUT_data_file"])
print("folder", sorted(os.listdir(data_dir)))
print("copied", sorted(os.listdir(copied)), os.access(copied, os.W_OK))
print("direct", direct)
print("vars", os.environ["AZUREML_RUN_ID"] == run_id, os.environ["GREETING"], exp_id)
print("code", sorted(os.listdir(".")))
mlflow.log_metric("accuracy", 0.93)
mlflow.log_param("lr", lr)
open(os.path.join(out_dir, "model.bin"), "w").write("weights")
open(out_file, "w").write("a,b\\n")
""",
    )
    write(root / "src" / "notes.log", "not part of the snapshot")
    write(root / "src" / ".amlignore", "*.log\n")
    write(root / "data" / "iris.csv", "sepal,petal\n")
    write(root / "data" / "more.csv", "x\n")
    spec = write(
        root / "job.yml",
        """command: >-
  python train.py ${{inputs.lr}} ${{inputs.n}} ${{inputs.flag}} ${{inputs.name}}
  ${{inputs.data_file}} ${{inputs.data_dir}} ${{inputs.copied}} ${{inputs.direct}}
  ${{outputs.model}} ${{outputs.table}}
code: ./src
inputs:
  lr: 0.010
  n: 3
  flag: true
  name:
    type: string
    value: "iris"
  data_file:
    type: uri_file
    path: ./data/iris.csv
  data_dir:
    type: uri_folder
    path: data
  copied:
    type: uri_folder
    path: data
    mode: download
  direct:
    type: uri_file
    path: https://example.invalid/iris.csv
    mode: direct
outputs:
  model:
  table:
    type: uri_file
environment_variables:
  GREETING: bonjour
environment:
  image: python:3.11
experiment_name: io-exp
display_name: io job
tags:
  team: vision
""",
    )
    job = create(server, spec)
    job = wait_status(server, job["name"])
    name = job["name"]
    log = server.api("GET", f"/api/v1/jobs/{name}/log").text
    assert job["status"] == "Completed", (job, log)
    assert "literals 0.010 3 True iris" in log, log
    assert "file sepal,petal True" in log
    assert "folder ['iris.csv', 'more.csv']" in log, log
    assert "copied ['iris.csv', 'more.csv'] True" in log
    assert "direct https://example.invalid/iris.csv" in log
    assert "vars True bonjour" in log
    assert "notes.log" not in log and ".amlignore" in log, "the snapshot honours .amlignore"

    client = MlflowClient(server.url)
    run = client.get_run(name)
    assert run.data.metrics["accuracy"] == 0.93 and run.data.params["lr"] == "0.010"
    assert run.data.tags["team"] == "vision" and run.info.run_name == "io job"
    assert client.get_experiment(run.info.experiment_id).name == "io-exp"

    dl = tmp_path / "dl"
    out = kiln(server, "job", "download", "-n", name, "--all", "-p", str(dl))
    assert out.returncode == 0, out.stderr
    assert (dl / "named-outputs" / "model" / "model.bin").read_text() == "weights"
    assert (dl / "named-outputs" / "table" / "table").read_text() == "a,b\n"

    # The same code again is not uploaded again: its snapshot id is the same.
    again = wait_status(server, create(server, spec)["name"])
    assert again["status"] == "Completed"
    assert again["spec"]["code"] == job["spec"]["code"] and again["spec"]["code"].startswith("cas:")


def test_bad_yaml_gets_file_line_and_field_and_nothing_runs(server, tmp_path):
    spec = write(
        tmp_path / "bad.yml",
        """command: echo ${{inputs.n}}
inputs:
  n:
    type: integer
    value: many
environment:
  image: python
""",
    )
    out = kiln(server, "job", "create", "-f", str(spec))
    assert out.returncode != 0
    assert f"{spec}:5:12: inputs.n.value: expected an integer" in out.stderr, out.stderr
    assert server.api("GET", "/api/v1/jobs").json()["jobs"] == []
    # The server checks a spec sent to it directly just as well.
    r = server.api("POST", "/api/v1/jobs", json={"spec": "command: 1\nenvironment: {image: x}\nunknown: 2\ncode: ../x", "source": "api.yml"})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE", r.text
    assert "code" in r.json()["message"] and "upload" in r.json()["message"]


def test_a_failing_command_fails_with_its_error(server, tmp_path):
    spec = write(tmp_path / "fail.yml", "command: python -c \"raise ValueError('bad input')\"\nenvironment: {image: python}\n")
    job = wait_status(server, create(server, spec)["name"])
    assert job["status"] == "Failed"
    assert "exited with code 1" in job["failure"] and "ValueError: bad input" in job["failure"], job["failure"]
    assert MlflowClient(server.url).get_run(job["name"]).info.status == "FAILED"
    out = kiln(server, "job", "stream", "-n", job["name"])
    assert out.returncode != 0 and "ValueError: bad input" in out.stderr


def test_timeout_is_enforced(server, tmp_path):
    spec = write(tmp_path / "t.yml", "command: echo start; sleep 60\nenvironment: {image: python}\nlimits:\n  timeout: 1\n")
    started = time.time()
    job = wait_status(server, create(server, spec)["name"], timeout=60)
    assert job["status"] == "Failed" and "limits.timeout of 1 s" in job["failure"]
    assert time.time() - started < 30


def processes_with(marker):
    out = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True)
    return out.stdout.split()


def test_cancel_stops_the_whole_process_tree(server, tmp_path):
    marker = f"{3000 + uuid.uuid4().int % 1000}.5"
    # A background child, a double fork and a new session: all must go.
    spec = write(
        tmp_path / "c.yml",
        f"command: (sleep {marker} &) ; setsid sleep {marker} & sleep {marker}\nenvironment: {{image: python}}\n",
    )
    name = create(server, spec)["name"]
    wait_status(server, name, ("Running",))
    assert wait_until(lambda: len(processes_with(f"sleep {marker}")) >= 3), processes_with(marker)
    out = kiln(server, "-o", "json", "job", "cancel", "-n", name)
    assert out.returncode == 0 and json.loads(out.stdout)["status"] in ("CancelRequested", "Canceled")
    job = wait_status(server, name, timeout=30)
    assert job["status"] == "Canceled"
    assert wait_until(lambda: processes_with(f"sleep {marker}") == [], 10), processes_with(marker)
    assert MlflowClient(server.url).get_run(name).info.status == "KILLED"


def test_jobs_queue_on_a_full_compute_target(server, tmp_path):
    assert kiln(server, "compute", "create", "--name", "one-slot", "--max-instances", "1").returncode == 0
    spec = write(tmp_path / "q.yml", "command: sleep 1.5\nenvironment: {image: python}\ncompute: one-slot\n")
    first = create(server, spec)["name"]
    second = create(server, spec)["name"]
    wait_status(server, first, ("Running",))
    assert server.api("GET", f"/api/v1/jobs/{second}").json()["status"] == "Queued"
    assert wait_status(server, second)["status"] == "Completed"
    f = wait_status(server, first)
    s = server.api("GET", f"/api/v1/jobs/{second}").json()
    first_end = dict((t["status"], t["at"]) for t in f["transitions"])["Completed"]
    second_start = dict((t["status"], t["at"]) for t in s["transitions"])["Preparing"]
    assert second_start >= first_end


def test_pytorch_distribution_launches_ranks(server, tmp_path):
    spec = write(
        tmp_path / "ddp.yml",
        """command: echo "rank=$RANK local=$LOCAL_RANK world=$WORLD_SIZE master=$MASTER_ADDR:$MASTER_PORT"
environment: {image: python}
distribution:
  type: pytorch
  process_count_per_instance: 2
""",
    )
    job = wait_status(server, create(server, spec)["name"])
    log = server.api("GET", f"/api/v1/jobs/{job['name']}/log").text
    assert job["status"] == "Completed", log
    assert "[rank 0] rank=0 local=0 world=2 master=127.0.0.1:" in log
    assert "[rank 1] rank=1 local=1 world=2 master=127.0.0.1:" in log


def test_a_server_restart_mid_job_loses_nothing(tmp_path, job_cache):
    data = tmp_path / "data"
    server = KilnServer(data, env=job_env(job_cache)).start()
    try:
        slow = write(tmp_path / "slow.yml", "command: for i in 1 2 3; do echo tick $i; sleep 0.5; done\nenvironment: {image: python}\n")
        marker = f"{4000 + uuid.uuid4().int % 1000}.25"
        doomed = write(tmp_path / "doomed.yml", f"command: sleep {marker}\nenvironment: {{image: python}}\n")
        survivor = create(server, slow)["name"]
        victim = create(server, doomed)["name"]
        wait_status(server, survivor, ("Running",))
        wait_status(server, victim, ("Running",))
        server.kill9()
        # While the server is down, one launcher dies (as in a crash); its job's processes
        # are left behind for the next server to find and stop.
        launchers = processes_with(f"launch {data}/jobs/{victim}")
        assert launchers, "the victim's launcher runs on after the server died"
        for pid in launchers:
            os.killpg(int(pid), signal.SIGKILL)
        server = KilnServer(data, env=job_env(job_cache)).start()
        done = wait_status(server, survivor, timeout=30)
        assert done["status"] == "Completed"
        log = server.api("GET", f"/api/v1/jobs/{survivor}/log").text
        assert "tick 1" in log and "tick 3" in log
        lost = wait_status(server, victim, timeout=30)
        assert lost["status"] == "Failed" and "without an outcome" in lost["failure"], lost["failure"]
        assert wait_until(lambda: processes_with(f"sleep {marker}") == [], 10), "the orphaned job process is stopped"
    finally:
        server.stop()


def test_conda_environment_is_built_once_with_uv_and_reused(server, tmp_path):
    write(
        tmp_path / "env" / "conda.yml",
        """name: tiny
channels: [conda-forge]
dependencies:
  - python=3.11
  - pip
  - pip:
    - six==1.16.0
""",
    )
    spec = write(
        tmp_path / "env" / "job.yml",
        """command: python -c "import six, sys; print('six', six.__version__, sys.prefix)"
environment:
  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest
  conda_file: conda.yml
""",
    )
    first = wait_status(server, create(server, spec)["name"], timeout=300)
    log = server.api("GET", f"/api/v1/jobs/{first['name']}/log").text
    assert first["status"] == "Completed", (first, log)
    assert "building" in log and "six 1.16.0" in log, log
    # The same packages again: nothing is built.
    second = wait_status(server, create(server, spec)["name"], timeout=120)
    log2 = server.api("GET", f"/api/v1/jobs/{second['name']}/log").text
    assert second["status"] == "Completed" and "cached" in log2 and "building" not in log2, log2
    prefix = [line for line in log.splitlines() if line.startswith("six ")][0].split()[-1]
    assert prefix in log2, "the second job runs in the same environment"


def test_assets_versions_latest_conflicts_and_use_in_jobs(server, tmp_path):
    write(tmp_path / "iris" / "iris.csv", "a,b\n1,2\n")
    data_spec = write(tmp_path / "data.yml", "name: iris\ntype: uri_folder\npath: ./iris\ndescription: flowers\n")
    first = json.loads(kiln(server, "-o", "json", "data", "create", "-f", str(data_spec)).stdout)[0]
    assert first["version"] == "1" and first["uri"].startswith("cas:")
    # The same content again under the same version is fine; other content is refused.
    again = kiln(server, "-o", "json", "data", "create", "-f", str(data_spec), "--set", "version=1")
    assert again.returncode == 0, again.stderr
    write(tmp_path / "iris" / "more.csv", "x\n")
    clash = kiln(server, "data", "create", "-f", str(data_spec), "--set", "version=1")
    assert clash.returncode != 0 and "already exists with different content" in clash.stderr, clash.stderr
    second = json.loads(kiln(server, "-o", "json", "data", "create", "-f", str(data_spec)).stdout)[0]
    assert second["version"] == "2"
    latest = json.loads(kiln(server, "-o", "json", "data", "show", "-n", "iris").stdout)[0]
    assert latest["version"] == "2"

    env_dir = tmp_path / "envs"
    write(env_dir / "conda.yml", "dependencies:\n  - pip:\n    - six==1.16.0\n")
    env_spec = write(env_dir / "env.yml", "name: tiny-env\nimage: python:3.11-slim\nconda_file: conda.yml\n")
    env = kiln(server, "-o", "json", "environment", "create", "-f", str(env_spec))
    assert env.returncode == 0, env.stderr
    assert json.loads(env.stdout)[0]["requirements"] == ["six==1.16.0"]
    wrong = write(env_dir / "oops.yml", "name: x\ndependencies:\n  - numpy\n")
    out = kiln(server, "environment", "create", "-f", str(wrong))
    assert out.returncode != 0 and "oops.yml:2: dependencies: this is a conda file" in out.stderr, out.stderr

    job_spec = write(
        tmp_path / "uses.yml",
        """command: >-
  ls ${{inputs.old}} && ls ${{inputs.new}} && python -c "import six; print('six ok')"
  && echo trained > ${{outputs.model}}/weights.txt
inputs:
  old:
    type: uri_folder
    path: azureml:iris:1
  new:
    type: uri_folder
    path: azureml:iris@latest
outputs:
  model:
    type: custom_model
    name: iris-model
environment: azureml:tiny-env@latest
""",
    )
    job = wait_status(server, create(server, job_spec)["name"], timeout=300)
    log = server.api("GET", f"/api/v1/jobs/{job['name']}/log").text
    assert job["status"] == "Completed", (job, log)
    assert log.count("iris.csv") == 2 and "more.csv" in log and "six ok" in log, log
    # The model output is a version of a registered model, as the MLflow registry shows it.
    versions = MlflowClient(server.url).search_model_versions("name = 'iris-model'")
    assert len(versions) == 1 and versions[0].run_id == job["name"]
    assert versions[0].source.endswith(f"azureml/{job['name']}/model")

    assert kiln(server, "data", "archive", "-n", "iris", "-v", "2").returncode == 0
    listed = json.loads(kiln(server, "-o", "json", "data", "list", "-n", "iris").stdout)
    assert [d["version"] for d in listed] == ["1"]
    assert json.loads(kiln(server, "-o", "json", "data", "show", "-n", "iris").stdout)[0]["version"] == "1"
    assert json.loads(kiln(server, "-o", "json", "data", "show", "-n", "iris", "-v", "2").stdout)[0]["archived"]


def model_create(server, *args):
    out = kiln(server, "-o", "json", "model", "create", *args)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)[0]


def test_model_assets_are_the_registry_models_and_feed_jobs(server, tmp_path):
    import mlflow
    import numpy as np
    from sklearn.linear_model import LinearRegression

    X = np.arange(10, dtype=float).reshape(-1, 1)
    mlflow.sklearn.save_model(LinearRegression().fit(X, 2 * X.ravel()), str(tmp_path / "clf"))

    first = model_create(server, "-n", "clf", "-p", str(tmp_path / "clf"), "-t", "mlflow_model")
    assert first["version"] == "1" and first["type"] == "mlflow_model"
    assert first["source"].startswith("mlflow-artifacts:/models/clf/") and first["source"].endswith("/clf")
    # Registering the same folder under its version again is a no-op; other content is refused.
    assert model_create(server, "-n", "clf", "-p", str(tmp_path / "clf"), "-v", "1")["source"] == first["source"]
    write(tmp_path / "clf" / "notes.txt", "v2\n")
    clash = kiln(server, "model", "create", "-n", "clf", "-p", str(tmp_path / "clf"), "-v", "1")
    assert clash.returncode != 0 and "already exists with different content" in clash.stderr, clash.stderr
    skip = kiln(server, "model", "create", "-n", "clf", "-p", str(tmp_path / "clf"), "-v", "7")
    assert skip.returncode != 0 and "the next version of clf is 2" in skip.stderr, skip.stderr
    second = model_create(server, "-n", "clf", "-p", str(tmp_path / "clf"), "-t", "mlflow_model")
    assert second["version"] == "2" and second["source"] != first["source"]

    # The stock MLflow client sees the same models and loads them from the copied folder.
    mlflow.set_tracking_uri(server.url)
    assert mlflow.pyfunc.load_model("models:/clf/1").predict(np.array([[3.0]]))[0] == pytest.approx(6.0)
    client = MlflowClient(server.url)
    assert [v.version for v in client.search_model_versions("name = 'clf'", order_by=["version_number ASC"])] == ["1", "2"]

    not_mlflow = kiln(server, "model", "create", "-n", "bad", "-p", str(tmp_path / "clf" / "notes.txt"), "-t", "mlflow_model")
    assert not_mlflow.returncode != 0 and "MLmodel" in not_mlflow.stderr, not_mlflow.stderr
    missing = kiln(server, "model", "create", "-n", "bad", "-p", str(tmp_path / "nope"))
    assert missing.returncode != 0 and "does not exist" in missing.stderr, missing.stderr

    # A model YAML file with a single file as its path; the version keeps the file's name.
    write(tmp_path / "weights" / "w.bin", "0.5")
    spec = write(tmp_path / "weights" / "model.yml", "name: weights\npath: w.bin\ndescription: one file\ntags:\n  team: a\n")
    w = model_create(server, "-f", str(spec))
    assert w["type"] == "custom_model" and w["source"].endswith("/w.bin") and w["tags"] == {"team": "a"}
    bad = write(tmp_path / "weights" / "bad.yml", "name: weights\npath: w.bin\ntype: onnx\n")
    out = kiln(server, "model", "create", "-f", str(bad))
    assert out.returncode != 0 and "bad.yml:3:7: type" in out.stderr, out.stderr

    # Jobs take registered models as inputs.
    job_spec = write(
        tmp_path / "score.yml",
        """command: >-
  ls ${{inputs.clf}} && cat ${{inputs.w}}/w.bin
inputs:
  clf:
    type: mlflow_model
    path: azureml:clf:1
  w:
    type: custom_model
    path: azureml:weights@latest
environment:
  image: python:3.11-slim
""",
    )
    job = wait_status(server, create(server, job_spec)["name"])
    log = server.api("GET", f"/api/v1/jobs/{job['name']}/log").text
    assert job["status"] == "Completed" and "MLmodel" in log and "0.5" in log, (job, log)

    # A run's artifacts become a version without copying.
    with mlflow.start_run() as run:
        mlflow.log_text("hi", "bundle/readme.txt")
    from_run = model_create(server, "-n", "from-run", "-p", f"runs:/{run.info.run_id}/bundle")
    assert from_run["source"] == f"runs:/{run.info.run_id}/bundle" and from_run["run_id"] == run.info.run_id
    local = mlflow.artifacts.download_artifacts(f"models:/from-run/1", dst_path=str(tmp_path / "dl"))
    assert open(os.path.join(local, "readme.txt")).read() == "hi"

    # Archive: out of lists and @latest, in MLflow's Archived stage, still there by version.
    assert kiln(server, "model", "archive", "-n", "clf", "-v", "2").returncode == 0
    assert client.get_model_version("clf", "2").current_stage == "Archived"
    latest = json.loads(kiln(server, "-o", "json", "model", "show", "-n", "clf", "-l", "latest").stdout)[0]
    assert latest["version"] == "1"
    listed = json.loads(kiln(server, "-o", "json", "model", "list", "-n", "clf").stdout)
    assert [m["version"] for m in listed] == ["1"]
    everything = json.loads(kiln(server, "-o", "json", "model", "list", "-n", "clf", "--include-archived").stdout)
    assert [m["version"] for m in everything] == ["2", "1"]
    assert kiln(server, "model", "restore", "-n", "clf").returncode == 0
    assert client.get_model_version("clf", "2").current_stage == "None"
    shown = kiln(server, "model", "show", "clf")
    assert shown.returncode == 0 and "mlflow-artifacts:/models/clf/" in shown.stdout
