"""Sweep jobs: Azure ML v2 sweep YAML run as trials of real processes, scored by their MLflow metrics."""

import json
import re
import time

from mlflow import MlflowClient

from conftest import wait_until
from test_jobs import create, job_cache, job_env, kiln, processes_with, server, wait_status, write  # noqa: F401

TRAIN = """import argparse, os
import mlflow
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

p = argparse.ArgumentParser()
p.add_argument("--C", type=float)
p.add_argument("--max_iter", type=int)
p.add_argument("--penalty")
p.add_argument("--model")
a = p.parse_args()
X, y = load_digits(return_X_y=True)
Xt, Xv, yt, yv = train_test_split(X / 16, y, test_size=0.3, random_state=0)
m = LogisticRegression(C=a.C, max_iter=a.max_iter).fit(Xt, yt)
# Logging the parsed values again must agree with what the sweep logged for the trial.
mlflow.log_params({"C": a.C, "max_iter": a.max_iter})
mlflow.log_metric("accuracy", m.score(Xv, yv))
with open(os.path.join(a.model, "model.txt"), "w") as f:
    f.write(f"C={a.C} max_iter={a.max_iter}\\n")
"""

SKLEARN_SWEEP = """$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
type: sweep
experiment_name: digits-sweep
trial:
  code: ./src
  command: >-
    python train.py --C ${{search_space.C}} --max_iter ${{search_space.max_iter}}
    --penalty ${{inputs.penalty}} --model ${{outputs.model}}
  environment: {image: python:3.11-slim}
inputs:
  penalty: l2
outputs:
  model:
sampling_algorithm: {type: random, seed: 42}
search_space:
  C: {type: loguniform, min_value: -7, max_value: 2}
  max_iter: [choice, [[20, 100]]]
objective: {goal: Maximize, primary_metric: accuracy}
limits: {max_total_trials: 5, max_concurrent_trials: 2}
"""


def trials(server, name):
    r = server.api("GET", f"/api/v1/jobs/{name}/trials")
    assert r.status_code == 200, r.text
    return r.json()


def test_a_scikit_learn_sweep_runs_trials_as_child_runs_and_reports_the_best(server, tmp_path):
    write(tmp_path / "src" / "train.py", TRAIN)
    spec = write(tmp_path / "sweep.yml", SKLEARN_SWEEP)
    out = kiln(server, "job", "create", "-f", str(spec), "-n", "digits1", "--stream", timeout=300)
    assert out.returncode == 0, out.stderr
    assert re.search(r"\[trial 0 digits1_0\] \w+ C=[0-9.e-]+ max_iter=(20|100)", out.stdout), out.stdout
    assert re.search(r"\[trial 4 digits1_4\] Completed accuracy=0\.\d+", out.stdout), out.stdout
    assert "Best trial: digits1_" in out.stderr
    job = server.api("GET", "/api/v1/jobs/digits1").json()
    assert job["type"] == "sweep" and job["status"] == "Completed", job

    t = trials(server, "digits1")
    assert [p["name"] for p in t["parameters"]] == ["C", "max_iter"]
    assert t["parameters"][0] == {"name": "C", "distribution": "loguniform", "arguments": {"min_value": -7.0, "max_value": 2.0}}
    assert t["sampling_algorithm"] == "random" and t["goal"] == "maximize"
    assert len(t["trials"]) == 5 and all(tr["status"] == "Completed" for tr in t["trials"])
    best = max(t["trials"], key=lambda tr: tr["metric"])
    assert t["best_trial"] == best["job"] and t["best_metric"] == best["metric"]

    # Each trial is a child run of the sweep's run, with its values as params.
    client = MlflowClient(server.url)
    for tr in t["trials"]:
        run = client.get_run(tr["job"])
        assert run.data.tags["mlflow.parentRunId"] == "digits1"
        assert float(run.data.params["C"]) == tr["values"]["C"]
        assert run.data.params["max_iter"] == str(tr["values"]["max_iter"])
        assert tr["values"]["max_iter"] in (20, 100)
        assert 0.0009 <= tr["values"]["C"] <= 7.39
        assert run.data.metrics["accuracy"] == tr["metric"]
    sweep_run = client.get_run("digits1")
    assert sweep_run.data.metrics["accuracy"] == best["metric"]
    assert sweep_run.data.tags["best_child_run_id"] == best["job"]
    assert job["properties"]["best_child_run_id"] == best["job"]

    # The sweep's outputs are the best trial's.
    assert job["outputs"]["model"]["uri"].endswith(f"/{best['job']}/model")
    dest = tmp_path / "dl"
    assert kiln(server, "job", "download", "-n", "digits1", "--output-name", "model", "--download-path", str(dest)).returncode == 0
    model_txt = (dest / "named-outputs" / "model" / "model.txt").read_text()
    assert model_txt.startswith(f"C={best['values']['C']} ")

    shown = kiln(server, "job", "show", "-n", "digits1")
    assert shown.returncode == 0, shown.stderr
    assert "ACCURACY" in shown.stdout and f"best: {best['job']}" in shown.stdout
    assert f"{best['index']} *" in shown.stdout

    # The same seed draws the same values, trial by trial.
    again = create(server, spec, "-n", "digits2")
    assert wait_status(server, again["name"], timeout=300)["status"] == "Completed"
    values = lambda name: [tr["values"] for tr in trials(server, name)["trials"]]  # noqa: E731
    assert values("digits2") == values("digits1")


def test_grid_enumerates_every_combination_once(server, tmp_path):
    spec = write(
        tmp_path / "grid.yml",
        """type: sweep
trial:
  command: >-
    python -c "import mlflow; mlflow.log_metric('score', ${{search_space.a}} * len('${{search_space.b}}'))"
  environment: {image: python}
sampling_algorithm: grid
search_space:
  a: {type: choice, values: [1, 2, 3]}
  b: {type: choice, values: [x, yy]}
objective: {goal: minimize, primary_metric: score}
limits: {max_total_trials: 20, max_concurrent_trials: 3}
""",
    )
    name = create(server, spec)["name"]
    job = wait_status(server, name, timeout=300)
    assert job["status"] == "Completed", job
    t = trials(server, name)
    got = sorted((tr["values"]["a"], tr["values"]["b"]) for tr in t["trials"])
    assert got == [(1, "x"), (1, "yy"), (2, "x"), (2, "yy"), (3, "x"), (3, "yy")]
    assert t["best_metric"] == 1.0
    assert job["properties"]["kiln.sweep.stopped"] == "the grid's 6 points were all tried"


def test_bad_sweep_specs_get_file_line_and_field_and_nothing_runs(server, tmp_path):
    spec = write(
        tmp_path / "bad.yml",
        """type: sweep
trial:
  command: echo ${{search_space.lr}}
  environment: {image: python}
sampling_algorithm: grid
search_space:
  lr: {type: uniform, min_value: 0.1, max_value: 1}
objective: {goal: maximize, primary_metric: acc}
""",
    )
    out = kiln(server, "job", "create", "-f", str(spec))
    assert out.returncode != 0
    assert "bad.yml:5:21: sampling_algorithm: grid sampling takes choice parameters only" in out.stderr, out.stderr
    # The server says the same to a client that skips the CLI's checks.
    r = server.api("POST", "/api/v1/jobs", json={"spec": spec.read_text(), "source": "bad.yml"})
    assert r.status_code == 400 and "grid sampling takes choice parameters only" in r.json()["message"], r.text
    assert server.api("GET", "/api/v1/jobs").json()["jobs"] == []


CURVE_PY = """import sys, time
import mlflow

level = float(sys.argv[1])
for step in range(60):
    mlflow.log_metric("loss", level + 1.0 / (step + 1), step=step)
    time.sleep(0.2)
"""

CURVE = """type: sweep
trial:
  code: ./src
  command: python curve.py ${{search_space.level}}
  environment: {image: python}
sampling_algorithm: grid
search_space:
  level: {type: choice, values: [0.1, 5.0]}
objective: {goal: minimize, primary_metric: loss}
limits: {max_total_trials: 2, max_concurrent_trials: 2}
"""


def test_early_termination_stops_the_bad_trial_of_the_first_wave(server, tmp_path):
    write(tmp_path / "src" / "curve.py", CURVE_PY)
    spec = write(
        tmp_path / "bandit.yml",
        CURVE + "early_termination: {type: bandit, slack_factor: 0.5, evaluation_interval: 2, delay_evaluation: 4}\n",
    )
    started = time.time()
    name = create(server, spec)["name"]
    job = wait_status(server, name, timeout=120)
    assert job["status"] == "Completed", job
    t = {tr["values"]["level"]: tr for tr in trials(server, name)["trials"]}
    good, bad = t[0.1], t[5.0]
    assert good["status"] == "Completed" and good["reports"] == 60 and good["early_terminated"] is None
    assert bad["status"] == "Canceled", bad
    assert bad["early_terminated"].startswith("stopped early by the bandit policy"), bad
    # Judged as soon as both reached an interval at or past the delay, not after 60 reports
    # (how soon depends on how far apart the two started on a busy machine).
    assert 4 <= bad["reports"] < 45, bad
    assert trials(server, name)["best_trial"] == good["job"]
    run = MlflowClient(server.url).get_run(bad["job"])
    assert run.info.status == "KILLED" and run.data.tags["kiln.early_terminated"] == "true"
    shown = kiln(server, "job", "show", "-n", name).stdout
    assert "EarlyTerminated" in shown
    assert time.time() - started < 60


def test_trial_timeout_and_cancel_stop_trials(server, tmp_path):
    marker = f"{4000 + int(time.time() * 1000) % 1000}.25"
    spec = write(
        tmp_path / "slow.yml",
        f"""type: sweep
trial:
  command: python -c "import mlflow; mlflow.log_metric('m', ${{{{search_space.x}}}}); import time; time.sleep({marker})"
  environment: {{image: python}}
sampling_algorithm: random
search_space:
  x: {{type: uniform, min_value: 0, max_value: 1}}
objective: {{goal: maximize, primary_metric: m}}
limits: {{max_total_trials: 2, max_concurrent_trials: 2, trial_timeout: 3}}
""",
    )
    name = create(server, spec)["name"]
    job = wait_status(server, name, timeout=120)
    t = trials(server, name)["trials"]
    assert len(t) == 2 and all(tr["status"] == "Failed" and "limits.timeout of 3 s" in tr["failure"] for tr in t), t
    # Metrics reported before the timeout were measured, but no trial completed.
    assert job["status"] == "Failed" and "all 2 trials failed" in job["failure"], job

    spec.write_text(spec.read_text().replace("trial_timeout: 3", "timeout: 3600"))
    name = create(server, spec)["name"]
    assert wait_until(lambda: len(processes_with(marker)) >= 2, 60)
    out = kiln(server, "job", "cancel", "-n", name)
    assert out.returncode == 0, out.stderr
    job = wait_status(server, name, timeout=60)
    assert job["status"] == "Canceled", job
    assert all(tr["status"] == "Canceled" for tr in trials(server, name)["trials"])
    assert wait_until(lambda: not processes_with(marker), 30)
    assert MlflowClient(server.url).get_run(name).info.status == "KILLED"


def test_a_pipeline_sweep_node_feeds_its_best_model_downstream(server, tmp_path):
    write(tmp_path / "components" / "src" / "train.py", TRAIN)
    write(
        tmp_path / "components" / "train.yml",
        """$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
name: train_digits
version: 1
code: ./src
inputs:
  C: {type: number, default: 1.0}
  max_iter: {type: integer}
outputs:
  model: {type: uri_folder}
command: python train.py --C ${{inputs.C}} --max_iter ${{inputs.max_iter}} --model ${{outputs.model}}
environment: {image: python:3.11-slim}
""",
    )
    spec = write(
        tmp_path / "pipe.yml",
        """type: pipeline
experiment_name: sweep-in-pipeline
outputs:
  report:
jobs:
  tune:
    type: sweep
    trial: ./components/train.yml
    inputs: {max_iter: 60}
    sampling_algorithm: {type: random, seed: 3}
    search_space:
      C: {type: uniform, min_value: 0.005, max_value: 2}
    objective: {goal: maximize, primary_metric: accuracy}
    limits: {max_total_trials: 3, max_concurrent_trials: 3}
    outputs:
      model:
  report:
    command: cp ${{inputs.model}}/model.txt ${{outputs.report}}/report.txt
    environment: {image: python}
    inputs:
      model: ${{parent.jobs.tune.outputs.model}}
    outputs:
      report: ${{parent.outputs.report}}
""",
    )
    name = create(server, spec)["name"]
    job = wait_status(server, name, timeout=300)
    assert job["status"] == "Completed", job
    nodes = {n["name"]: n for n in server.api("GET", f"/api/v1/jobs/{name}/graph").json()["nodes"]}
    sweep_job = server.api("GET", f"/api/v1/jobs/{nodes['tune']['job']}").json()
    assert sweep_job["type"] == "sweep" and sweep_job["status"] == "Completed"
    t = trials(server, sweep_job["name"])
    assert len(t["trials"]) == 3 and {tr["status"] for tr in t["trials"]} == {"Completed"}
    assert all(0.005 <= tr["values"]["C"] <= 2 for tr in t["trials"])
    best = next(tr for tr in t["trials"] if tr["job"] == t["best_trial"])
    assert best["metric"] == max(tr["metric"] for tr in t["trials"])

    # Runs nest: pipeline → sweep → trials.
    client = MlflowClient(server.url)
    assert client.get_run(sweep_job["name"]).data.tags["mlflow.parentRunId"] == name
    assert client.get_run(best["job"]).data.tags["mlflow.parentRunId"] == sweep_job["name"]

    dest = tmp_path / "dl"
    out = kiln(server, "job", "download", "-n", name, "--output-name", "report", "--download-path", str(dest))
    assert out.returncode == 0, out.stderr
    report = (dest / "named-outputs" / "report" / "report.txt").read_text()
    assert report == f"C={best['values']['C']} max_iter=60\n"


def test_a_sweep_node_must_sweep_inputs_its_trial_has(server, tmp_path):
    write(tmp_path / "c.yml", "name: c\ninputs:\n  lr: {type: number}\ncommand: echo ${{inputs.lr}}\nenvironment: {image: python}\n")
    spec = write(
        tmp_path / "pipe.yml",
        """type: pipeline
jobs:
  tune:
    type: sweep
    trial: ./c.yml
    sampling_algorithm: random
    search_space:
      rate: {type: uniform, min_value: 0, max_value: 1}
    objective: {goal: maximize, primary_metric: acc}
""",
    )
    out = kiln(server, "job", "create", "-f", str(spec))
    assert out.returncode != 0
    assert "jobs.tune.search_space.rate: the trial component has no input 'rate' to sweep (inputs: lr)" in out.stderr, out.stderr


def test_the_sweep_timeout_ends_a_bayesian_sweep_with_the_best_trial_so_far(server, tmp_path):
    spec = write(
        tmp_path / "budget.yml",
        """type: sweep
trial:
  command: python -c "import mlflow, time; mlflow.log_metric('m', ${{search_space.x}}); time.sleep(0.5)"
  environment: {image: python}
sampling_algorithm: bayesian
search_space:
  x: {type: uniform, min_value: 0, max_value: 1}
objective: {goal: maximize, primary_metric: m}
limits: {max_total_trials: 100, max_concurrent_trials: 1, timeout: 8}
""",
    )
    name = create(server, spec)["name"]
    job = wait_status(server, name, timeout=60)
    assert job["status"] == "Completed", job
    assert job["properties"]["kiln.sweep.stopped"] == "stopped at the sweep's timeout (8 s)"
    assert job["properties"]["kiln.sweep.sampling_algorithm"] == "bayesian"
    t = trials(server, name)
    done = [tr for tr in t["trials"] if tr["status"] == "Completed"]
    assert 1 <= len(done) < 100 and all(tr["status"] in ("Completed", "Canceled") for tr in t["trials"])
    assert t["best_metric"] == max(tr["metric"] for tr in done)


def test_a_sweep_picks_up_after_a_server_restart(tmp_path, job_cache):
    from conftest import KilnServer, free_port

    # Running trials log to the server they were started by: it comes back on the same port.
    port = free_port()
    data = tmp_path / "data"
    spec = write(
        tmp_path / "restart.yml",
        """type: sweep
trial:
  command: python -c "import mlflow, time; time.sleep(1.5); mlflow.log_metric('m', ${{search_space.x}})"
  environment: {image: python}
sampling_algorithm: {type: random, seed: 5}
search_space:
  x: {type: uniform, min_value: 0, max_value: 1}
objective: {goal: minimize, primary_metric: m}
limits: {max_total_trials: 4, max_concurrent_trials: 2}
""",
    )
    server = KilnServer(data, env=job_env(job_cache), port=port).start()
    try:
        name = create(server, spec, "-n", "survivor")["name"]
        assert wait_until(lambda: any(tr["status"] == "Running" for tr in trials(server, name)["trials"]), 30)
        server.kill9()
        server = KilnServer(data, env=job_env(job_cache), port=port).start()
        assert wait_until(lambda: server.api("GET", f"/api/v1/jobs/{name}").json()["status"] == "Completed", 90), json.dumps(
            [server.api("GET", f"/api/v1/jobs/{name}").json()["status"], trials(server, name)["trials"]]
        )
        t = trials(server, name)
        assert [tr["index"] for tr in t["trials"]] == [0, 1, 2, 3]
        assert all(tr["status"] == "Completed" for tr in t["trials"])
        # The seed drew the same values as an uninterrupted sweep would.
        fresh = create(server, spec, "-n", "uninterrupted")["name"]
        assert wait_status(server, fresh, timeout=90)["status"] == "Completed"
        assert [tr["values"] for tr in trials(server, fresh)["trials"]] == [tr["values"] for tr in t["trials"]]
    finally:
        server.stop()
