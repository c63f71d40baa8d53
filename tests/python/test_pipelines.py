"""Pipeline jobs: Azure ML v2 pipeline YAML with component files, run as DAGs of real processes."""

import json

from mlflow import MlflowClient

from conftest import KilnServer, wait_until
from test_jobs import create, job_cache, job_env, kiln, server, wait_status, write  # noqa: F401 (fixtures)

ENV = "environment: {image: python:3.11-slim}\n"


def graph(server, name):
    return {n["name"]: n for n in server.api("GET", f"/api/v1/jobs/{name}/graph").json()["nodes"]}


def log_of(server, job):
    return server.api("GET", f"/api/v1/jobs/{job}/log").text


def running_interval(job):
    at = dict((t["status"], t["at"]) for t in job["transitions"])
    return at["Running"], at["Completed"]


def components(tmp_path):
    write(
        tmp_path / "components" / "prep.yml",
        """$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
name: prep
version: 1
inputs:
  raw: {type: uri_folder}
  rows: {type: integer, default: 3}
  seed: {type: integer, optional: true}
outputs:
  clean: {type: uri_folder}
command: >-
  ls ${{inputs.raw}} > ${{outputs.clean}}/files.txt && echo rows=${{inputs.rows}}
  $[[&& echo seed=${{inputs.seed}}]]
"""
        + ENV,
    )
    write(
        tmp_path / "components" / "branch.yml",
        """name: branch
inputs:
  data: {type: uri_folder}
  tag: {type: string}
outputs:
  out: {type: uri_folder}
command: >-
  python -c "import time; time.sleep(1.5)" && echo ${{inputs.tag}} > ${{outputs.out}}/tag.txt
  && cat ${{inputs.data}}/files.txt >> ${{outputs.out}}/tag.txt
"""
        + ENV,
    )


def test_a_pipeline_passes_data_between_steps_and_runs_branches_in_parallel(server, tmp_path):
    components(tmp_path)
    write(tmp_path / "raw" / "iris.csv", "a,b\n")
    spec = write(
        tmp_path / "pipe.yml",
        """$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
display_name: three steps
inputs:
  raw: {type: uri_folder, path: ./raw}
outputs:
  joined:
settings:
  default_compute: azureml:local
  default_datestore: typo
jobs:
  prep:
    type: command
    component: ./components/prep.yml
    inputs: {raw: "${{parent.inputs.raw}}"}
  left:
    component: file:./components/branch.yml
    inputs: {data: "${{parent.jobs.prep.outputs.clean}}", tag: L}
  right:
    component: ./components/branch.yml
    inputs: {data: "${{parent.jobs.prep.outputs.clean}}", tag: R}
  join:
    command: cat ${{inputs.l}}/tag.txt ${{inputs.r}}/tag.txt > ${{outputs.both}}/both.txt && cat ${{outputs.both}}/both.txt
"""
        + "    "
        + ENV
        + """    inputs:
      l: "${{parent.jobs.left.outputs.out}}"
      r: {path: "${{parent.jobs.right.outputs.out}}", mode: download}
    outputs:
      both: "${{parent.outputs.joined}}"
""",
    )
    out = kiln(server, "job", "create", "-f", str(spec))
    assert out.returncode == 0, out.stderr
    assert "unknown setting 'default_datestore'" in out.stderr
    name = json.loads(kiln(server, "-o", "json", "job", "list").stdout)[0]["name"]
    pipeline = wait_status(server, name)
    assert pipeline["status"] == "Completed", pipeline
    assert pipeline["type"] == "pipeline" and pipeline["properties"]["azureml.default_datestore"] == "typo"
    steps = graph(server, name)
    assert list(steps) == ["prep", "left", "right", "join"]
    assert [steps[s]["component"] for s in steps] == [
        "./components/prep.yml",
        "file:./components/branch.yml",
        "./components/branch.yml",
        "inline",
    ]
    assert {n["status"] for n in steps.values()} == {"Completed"}
    prep_log = log_of(server, steps["prep"]["job"])
    assert "rows=3" in prep_log and "seed" not in prep_log, prep_log
    join_log = log_of(server, steps["join"]["job"])
    assert join_log.count("iris.csv") == 2 and "L" in join_log and "R" in join_log, join_log
    # The two branches ran at the same time.
    left = server.api("GET", f"/api/v1/jobs/{steps['left']['job']}").json()
    right = server.api("GET", f"/api/v1/jobs/{steps['right']['job']}").json()
    (l0, l1), (r0, r1) = running_interval(left), running_interval(right)
    assert l0 < r1 and r0 < l1, (l0, l1, r0, r1)
    # The promoted output is the pipeline's; every step is a child run of the pipeline's run.
    assert pipeline["outputs"]["joined"]["uri"] == server.api("GET", f"/api/v1/jobs/{steps['join']['job']}").json()["outputs"]["both"]["uri"]
    run = MlflowClient(server.url).get_run(steps["join"]["job"])
    assert run.data.tags["mlflow.parentRunId"] == name
    # job show lists the steps; job list shows the pipeline, not its steps, unless asked.
    shown = kiln(server, "job", "show", "-n", name)
    assert "join" in shown.stdout and "ran: no earlier run of this step" in shown.stdout, shown.stdout
    listed = json.loads(kiln(server, "-o", "json", "job", "list").stdout)
    assert [j["name"] for j in listed] == [name]
    children = json.loads(kiln(server, "-o", "json", "job", "list", "--parent-job-name", name).stdout)
    assert len(children) == 4
    streamed = kiln(server, "job", "stream", "-n", name)
    assert streamed.returncode == 0 and "[join]" in streamed.stdout and "Status: Completed" in streamed.stderr


def chain(tmp_path, names=("a", "b", "c")):
    """A chain a → b → c and an independent step d, each with its own code folder."""
    jobs = []
    for i, n in enumerate(names):
        write(tmp_path / "code" / n / "step.py", f"print('step {n} v1')\n")
        source = "" if i == 0 else f"\n    inputs: {{prev: \"${{{{parent.jobs.{names[i - 1]}.outputs.out}}}}\"}}"
        jobs.append(
            f"""  {n}:
    command: python step.py > ${{{{outputs.out}}}}/{n}.txt{' && ls ${{inputs.prev}}' if i else ''}
    code: ./code/{n}
    {ENV.strip()}{source}
    outputs: {{out: }}
"""
        )
    write(tmp_path / "code" / "d" / "step.py", "print('d')\n")
    jobs.append(f"  d:\n    command: python step.py\n    code: ./code/d\n    {ENV.strip()}\n")
    return write(tmp_path / "chain.yml", "type: pipeline\nexperiment_name: reuse\njobs:\n" + "".join(jobs))


def test_an_unchanged_pipeline_is_reused_and_a_change_reruns_the_step_and_its_descendants(server, tmp_path):
    spec = chain(tmp_path)
    first = wait_status(server, create(server, spec)["name"])
    assert first["status"] == "Completed"
    second = wait_status(server, create(server, spec)["name"])
    assert second["status"] == "Completed"
    again = graph(server, second["name"])
    ran_first = graph(server, first["name"])
    for step, node in again.items():
        assert node["reused_from"] == ran_first[step]["job"], (step, node)
        assert node["reuse"].startswith("reused job"), node

    write(tmp_path / "code" / "b" / "step.py", "print('step b v2')\n")
    third = wait_status(server, create(server, spec)["name"])
    assert third["status"] == "Completed"
    steps = graph(server, third["name"])
    reused = sorted(s for s, n in steps.items() if n["reused_from"])
    assert reused == ["a", "d"], steps
    assert steps["b"]["reuse"].startswith("ran: code changed"), steps["b"]
    assert steps["c"]["reuse"].startswith("ran: input 'prev' changed"), steps["c"]

    # force_rerun: nothing is reused.
    forced = wait_status(server, create(server, spec, "--set", "settings.force_rerun=true")["name"])
    assert all(n["reused_from"] is None for n in graph(server, forced["name"]).values())


def test_a_failed_step_stops_the_pipeline_unless_told_to_continue(server, tmp_path):
    spec = write(
        tmp_path / "fail.yml",
        f"""type: pipeline
jobs:
  bad:
    command: echo about to fail && exit 3
    {ENV.strip()}
    outputs: {{out: }}
  after_bad:
    command: echo never
    {ENV.strip()}
    inputs: {{x: "${{{{parent.jobs.bad.outputs.out}}}}"}}
  slow:
    command: python -c "import time; time.sleep(4)"
    {ENV.strip()}
""",
    )
    fast = wait_status(server, create(server, spec)["name"])
    assert fast["status"] == "Failed" and "step 'bad'" in fast["failure"], fast
    steps = graph(server, fast["name"])
    assert steps["after_bad"]["job"] is None
    assert wait_until(lambda: graph(server, fast["name"])["slow"]["status"] == "Canceled", 30), {k: (v["status"], v["job"], v["reuse"]) for k, v in graph(server, fast["name"]).items()}

    kept = wait_status(server, create(server, spec, "--set", "settings.continue_on_step_failure=true")["name"])
    assert kept["status"] == "Failed"
    steps = graph(server, kept["name"])
    assert steps["slow"]["status"] == "Completed" and steps["after_bad"]["job"] is None, steps


def test_retries_and_cancel(server, tmp_path):
    flaky = write(
        tmp_path / "flaky.yml",
        f"""type: pipeline
jobs:
  flaky:
    command: test -f {tmp_path}/second || (touch {tmp_path}/second && exit 1)
    {ENV.strip()}
    retry_settings: {{max_retries: 2}}
""",
    )
    done = wait_status(server, create(server, flaky)["name"])
    assert done["status"] == "Completed", done
    assert graph(server, done["name"])["flaky"]["attempts"] == 2

    long = write(tmp_path / "long.yml", f"type: pipeline\njobs:\n  nap:\n    command: sleep 300\n    {ENV.strip()}\n")
    name = create(server, long)["name"]
    assert wait_until(lambda: graph(server, name)["nap"]["status"] == "Running", 30)
    assert kiln(server, "job", "cancel", "-n", name).returncode == 0
    ended = wait_status(server, name, timeout=60)
    assert ended["status"] == "Canceled"
    assert graph(server, name)["nap"]["status"] == "Canceled"


def test_nested_pipeline_components_and_invalid_pipelines(server, tmp_path):
    components(tmp_path)
    write(
        tmp_path / "components" / "sub.yml",
        """type: pipeline
name: sub
inputs:
  raw: {type: uri_folder}
outputs:
  out: {type: uri_folder}
jobs:
  p:
    component: ./prep.yml
    inputs: {raw: "${{parent.inputs.raw}}", seed: 7}
  b:
    component: ./branch.yml
    inputs: {data: "${{parent.jobs.p.outputs.clean}}", tag: nested}
    outputs: {out: "${{parent.outputs.out}}"}
""",
    )
    write(tmp_path / "raw" / "x.csv", "1\n")
    spec = write(
        tmp_path / "nested.yml",
        """type: pipeline
inputs: {raw: {type: uri_folder, path: ./raw}}
jobs:
  one:
    type: pipeline
    component: ./components/sub.yml
    inputs: {raw: "${{parent.inputs.raw}}"}
  two:
    type: pipeline
    component: ./components/sub.yml
    inputs: {raw: "${{parent.inputs.raw}}"}
""",
    )
    valid = kiln(server, "-o", "json", "job", "validate", "-f", str(spec))
    assert valid.returncode == 0, valid.stderr
    assert [s["name"] for s in json.loads(valid.stdout)["steps"]] == ["one/p", "one/b", "two/p", "two/b"]
    done = wait_status(server, create(server, spec)["name"])
    assert done["status"] == "Completed", done
    steps = graph(server, done["name"])
    assert "seed=7" in log_of(server, steps["one/p"]["job"])
    # The second use of the component is the same work: reused within the same pipeline run
    # only if the first had completed; either way both completed.
    assert steps["two/b"]["status"] == "Completed"

    cycle = write(
        tmp_path / "cycle.yml",
        f"""type: pipeline
jobs:
  a:
    command: echo ${{{{inputs.x}}}}
    {ENV.strip()}
    inputs: {{x: "${{{{parent.jobs.b.outputs.o}}}}"}}
    outputs: {{o: }}
  b:
    command: echo ${{{{inputs.y}}}}
    {ENV.strip()}
    inputs: {{y: "${{{{parent.jobs.a.outputs.o}}}}"}}
    outputs: {{o: }}
""",
    )
    out = kiln(server, "job", "create", "-f", str(cycle))
    assert out.returncode != 0 and f"{cycle}:4:5: jobs.a: the steps form a cycle: a → b → a" in out.stderr, out.stderr
    missing = write(
        tmp_path / "missing.yml",
        "type: pipeline\njobs:\n  p:\n    component: ./components/prep.yml\n",
    )
    out = kiln(server, "job", "validate", "-f", str(missing))
    assert out.returncode != 0
    assert f"{missing}:4:5: jobs.p.inputs.raw: missing required input 'raw' (uri_folder) of component 'prep'" in out.stderr, out.stderr
    assert json.loads(kiln(server, "-o", "json", "job", "list").stdout)[0]["name"] == done["name"], "nothing was submitted"


def test_a_server_restart_resumes_a_pipeline_without_rerunning_finished_steps(tmp_path, job_cache):  # noqa: F811
    data = tmp_path / "data"
    srv = KilnServer(data, env=job_env(job_cache)).start()
    try:
        spec = write(
            tmp_path / "resume.yml",
            f"""type: pipeline
jobs:
  first:
    command: echo first > ${{{{outputs.o}}}}/f.txt
    {ENV.strip()}
    outputs: {{o: }}
  second:
    command: sleep 2 && cat ${{{{inputs.i}}}}/f.txt
    {ENV.strip()}
    inputs: {{i: "${{{{parent.jobs.first.outputs.o}}}}"}}
  third:
    command: echo third
    {ENV.strip()}
    inputs: {{i: "${{{{parent.jobs.first.outputs.o}}}}"}}
    outputs: {{o: }}
  last:
    command: echo last
    {ENV.strip()}
    inputs: {{a: "${{{{parent.jobs.third.outputs.o}}}}"}}
""",
        )
        name = create(srv, spec)["name"]
        assert wait_until(lambda: graph(srv, name)["second"]["status"] == "Running", 30)
        srv.kill9()
        srv = KilnServer(data, env=job_env(job_cache)).start()
        done = wait_status(srv, name, timeout=60)
        assert done["status"] == "Completed", (done["failure"], graph(srv, name))
        steps = graph(srv, name)
        assert all(n["attempts"] == 1 for n in steps.values()), steps
        assert "first" in log_of(srv, steps["second"]["job"])
    finally:
        srv.stop()


def test_registered_components_by_version_and_latest(server, tmp_path):
    components(tmp_path)
    prep = tmp_path / "components" / "prep.yml"
    first = kiln(server, "-o", "json", "component", "create", "-f", str(prep))
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)[0]["version"] == "1" and json.loads(first.stdout)[0]["inputs"] == ["raw", "rows", "seed"]
    assert kiln(server, "component", "create", "-f", str(prep)).returncode == 0, "the same content again is fine"
    prep.write_text(prep.read_text().replace("default: 3", "default: 4"))
    clash = kiln(server, "component", "create", "-f", str(prep))
    assert clash.returncode != 0 and "already exists with different content" in clash.stderr, clash.stderr
    assert kiln(server, "component", "create", "-f", str(prep), "--set", "version=2").returncode == 0
    branch = kiln(server, "-o", "json", "component", "create", "-f", str(tmp_path / "components" / "branch.yml"))
    assert branch.returncode == 0 and json.loads(branch.stdout)[0]["version"] == "1", branch.stderr
    listed = json.loads(kiln(server, "-o", "json", "component", "list", "-n", "prep").stdout)
    assert sorted(c["version"] for c in listed) == ["1", "2"]

    write(tmp_path / "raw" / "r.csv", "1\n")
    spec = write(
        tmp_path / "registered.yml",
        """type: pipeline
inputs: {raw: {type: uri_folder, path: ./raw}}
jobs:
  old:
    component: azureml:prep:1
    inputs: {raw: "${{parent.inputs.raw}}"}
  new:
    component: azureml:prep@latest
    inputs: {raw: "${{parent.inputs.raw}}"}
  tagged:
    component: azureml:branch@latest
    inputs: {data: "${{parent.jobs.new.outputs.clean}}", tag: T}
""",
    )
    done = wait_status(server, create(server, spec)["name"])
    assert done["status"] == "Completed", done
    steps = graph(server, done["name"])
    assert "rows=3" in log_of(server, steps["old"]["job"]) and "rows=4" in log_of(server, steps["new"]["job"])
    assert steps["tagged"]["component"] == "azureml:branch@latest"

    unknown = write(tmp_path / "unknown.yml", "type: pipeline\njobs:\n  x:\n    component: azureml:nope@latest\n")
    out = kiln(server, "job", "create", "-f", str(unknown))
    assert out.returncode != 0 and f"{unknown}:4:16: component: 'azureml:nope@latest' is not a registered component" in out.stderr, out.stderr


def test_output_paths_resolve_name_output_name_and_default_datastore(server, tmp_path):
    spec = write(
        tmp_path / "paths.yml",
        f"""type: pipeline
jobs:
  w:
    command: echo hi > ${{{{outputs.o}}}}/x.txt
    {ENV.strip()}
    outputs:
      o: {{type: uri_folder, path: "azureml://datastores/${{{{default_datastore}}}}/paths/custom/${{{{name}}}}/${{{{output_name}}}}"}}
""",
    )
    done = wait_status(server, create(server, spec)["name"])
    assert done["status"] == "Completed", done
    step = graph(server, done["name"])["w"]["job"]
    out = server.api("GET", f"/api/v1/jobs/{step}").json()["outputs"]["o"]
    assert out["uri"] == f"blob:custom/{step}/o", out
    files = server.api("GET", f"/api/v1/jobs/{step}/outputs/o").json()
    assert "x.txt" in json.dumps(files), files
