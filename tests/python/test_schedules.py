"""Schedules: Azure ML v2 schedule YAML (cron and recurrence) firing real pipeline jobs."""

import datetime
import json
import time

from conftest import KilnServer, wait_until
from test_jobs import create, job_cache, job_env, kiln, server, wait_status, write  # noqa: F401 (fixtures)

ENV = "environment: {image: python:3.11-slim}\n"
GRACE_S = 15  # kiln_orchestrator::LATE_GRACE_MS


def iso_utc(seconds_from_now):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds_from_now)
    return t.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def pipeline(tmp_path):
    write(tmp_path / "raw" / "a.txt", "a\n")
    return write(
        tmp_path / "pipe.yml",
        f"""type: pipeline
inputs:
  note: {{type: string, default: plain}}
  raw: {{type: uri_folder, path: ./raw}}
jobs:
  hello:
    command: echo note=${{{{inputs.note}}}} && ls ${{{{inputs.raw}}}}
    {ENV.strip()}
    inputs: {{note: "${{{{parent.inputs.note}}}}", raw: "${{{{parent.inputs.raw}}}}"}}
""",
    )


def schedule(server, name):
    return server.api("GET", f"/api/v1/schedules/{name}").json()


def top_level_jobs(server):
    return server.api("GET", "/api/v1/jobs").json()["jobs"]


def test_a_schedule_fires_its_pipeline_on_time_with_overrides(server, tmp_path):
    pipeline(tmp_path)
    # Far enough ahead that a slow machine has made the schedule before its start time.
    start = iso_utc(8)
    spec = write(
        tmp_path / "sched.yml",
        f"""$schema: https://azuremlschemas.azureedge.net/latest/schedule.schema.json
name: soon
display_name: Soon
tags: {{team: ml}}
trigger:
  type: recurrence
  frequency: minute
  interval: 1
  start_time: "{start}"
  time_zone: Pacific Standard Time
create_job:
  type: pipeline
  job: ./pipe.yml
  inputs:
    note: "${{{{name}}}}@${{{{creation_context.trigger_time}}}}"
  tags: {{origin: schedule}}
""",
    )
    out = kiln(server, "-o", "json", "schedule", "create", "-f", str(spec))
    assert out.returncode == 0, out.stderr
    made = json.loads(out.stdout)
    assert made["is_enabled"] and made["create_job"] == "./pipe.yml" and made["fires"] == [], made
    start_ms = int(datetime.datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp() * 1000)
    assert made["next_fire_at"] == start_ms, made
    assert top_level_jobs(server) == [], "it does not fire before its start time"

    assert wait_until(lambda: schedule(server, "soon")["fires"], 30)
    fire = schedule(server, "soon")["fires"][0]
    assert fire["status"] == "started" and fire["at"] == start_ms, fire
    job = wait_status(server, fire["job_name"])
    assert job["status"] == "Completed", job
    assert job["experiment_name"] == "soon", "a schedule's jobs go to the experiment of its name"
    assert job["properties"]["kiln.schedule"] == "soon"
    assert job["tags"]["origin"] == "schedule"
    step = server.api("GET", f"/api/v1/jobs?parent_job_name={job['name']}").json()["jobs"][0]
    log = server.api("GET", f"/api/v1/jobs/{step['name']}/log").text
    assert f"note={job['name']}@{start}" in log and "a.txt" in log, log
    assert schedule(server, "soon")["next_fire_at"] == start_ms + 60_000

    # Disabled schedules are listed on request only.
    assert kiln(server, "schedule", "disable", "-n", "soon").returncode == 0
    listed = json.loads(kiln(server, "-o", "json", "schedule", "list").stdout)
    assert listed == []
    listed = json.loads(kiln(server, "-o", "json", "schedule", "list", "--disabled-only").stdout)
    assert [s["name"] for s in listed] == ["soon"] and listed[0]["next_fire_at"] is None
    table = kiln(server, "schedule", "list", "--include-disabled").stdout
    assert "soon" in table and "every minute (Pacific Standard Time)" in table, table
    enabled = json.loads(kiln(server, "-o", "json", "schedule", "enable", "-n", "soon").stdout)
    assert enabled["is_enabled"] and enabled["next_fire_at"] > int(time.time() * 1000), enabled

    # Deleting a schedule keeps the jobs it created.
    assert kiln(server, "schedule", "delete", "-n", "soon").returncode == 0
    gone = kiln(server, "schedule", "show", "-n", "soon")
    assert gone.returncode != 0 and "schedule 'soon' does not exist" in gone.stderr, gone.stderr
    assert server.api("GET", f"/api/v1/jobs/{job['name']}").status_code == 200


def test_times_missed_while_the_server_is_down_are_skipped_not_run(tmp_path, job_cache):  # noqa: F811
    pipeline(tmp_path)
    data = tmp_path / "data"
    srv = KilnServer(data, env=job_env(job_cache)).start()
    try:
        start = iso_utc(6)
        spec = write(
            tmp_path / "sched.yml",
            f"""name: missed
trigger: {{type: recurrence, frequency: minute, interval: 1, start_time: "{start}"}}
create_job: ./pipe.yml
""",
        )
        out = kiln(srv, "schedule", "create", "-f", str(spec))
        assert out.returncode == 0, out.stderr
        srv.stop()
        start_s = datetime.datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp()
        time.sleep(max(0.0, start_s + GRACE_S + 2 - time.time()))
        srv = KilnServer(data, env=job_env(job_cache)).start()
        assert wait_until(lambda: schedule(srv, "missed")["fires"], 10)
        s = schedule(srv, "missed")
        assert [f["status"] for f in s["fires"]] == ["skipped"], s["fires"]
        assert "no server was running" in s["fires"][0]["message"]
        assert top_level_jobs(srv) == [], "a missed time is not run late"
        start_ms = int(datetime.datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp() * 1000)
        assert s["next_fire_at"] == start_ms + 60_000, s
    finally:
        srv.stop()


def test_cron_schedules_of_an_earlier_job_and_the_docs_spellings(server, tmp_path):
    first = create(server, write(tmp_path / "job.yml", "command: echo from the original job\n" + ENV))
    assert wait_status(server, first["name"])["status"] == "Completed"
    # No start time: the first job runs at once, then on the cron times.
    spec = write(
        tmp_path / "cron.yml",
        f"""name: weekday_mornings
trigger:
  type: cron
  expression: "0 9 * * 1-5"
  timezone: W. Europe Standard Time
create_job: azureml:{first['name']}
""",
    )
    out = kiln(server, "-o", "json", "schedule", "create", "-f", str(spec))
    assert out.returncode == 0, out.stderr
    assert wait_until(lambda: schedule(server, "weekday_mornings")["fires"], 10)
    s = schedule(server, "weekday_mornings")
    assert s["trigger"] == "cron 0 9 * * 1-5 (W. Europe Standard Time)", s
    copy = wait_status(server, s["fires"][0]["job_name"])
    assert copy["status"] == "Completed" and copy["name"] != first["name"], copy
    assert "from the original job" in server.api("GET", f"/api/v1/jobs/{copy['name']}/log").text
    # The next time is a weekday at 09:00 in Berlin (08:00 or 07:00 UTC).
    nxt = datetime.datetime.fromtimestamp(s["next_fire_at"] / 1000, datetime.timezone.utc)
    assert nxt.weekday() < 5 and (nxt.hour, nxt.minute) in ((8, 0), (7, 0)), nxt
    # `update --set` changes the stored schedule without firing it again.
    out = kiln(server, "-o", "json", "schedule", "update", "-n", "weekday_mornings", "--set", "trigger.expression=30 6 * * *")
    assert out.returncode == 0, out.stderr
    updated = json.loads(out.stdout)
    assert updated["trigger"].startswith("cron 30 6 * * *") and len(updated["fires"]) == 1, updated


def test_invalid_schedules_are_refused_with_file_line_and_field(server, tmp_path):
    pipeline(tmp_path)
    write(tmp_path / "broken.yml", "type: pipeline\njobs:\n  a:\n    command: echo\n    inputs: {x: '${{parent.jobs.nope.outputs.o}}'}\n    " + ENV)
    cases = [
        (
            "name: s\ntrigger:\n  type: cron\n  expression: '61 * * * *'\ncreate_job: ./pipe.yml\n",
            "bad.yml:4:15: trigger.expression: '61 * * * *' is not a cron expression",
        ),
        (
            "name: s\ntrigger: {type: recurrence, frequency: day, interval: 1, time_zone: Atlantis Time}\ncreate_job: ./pipe.yml\n",
            "trigger.time_zone: unknown time zone 'Atlantis Time'",
        ),
        (
            "name: s\ntrigger: {type: recurrence, frequency: week, interval: 1, schedule: {hours: 9, minutes: 0, week_days: [someday]}}\ncreate_job: ./pipe.yml\n",
            "trigger.schedule.week_days: 'someday' is not a week day",
        ),
        ("name: s\ntrigger: {type: cron, expression: '* * * * *'}\ncreate_job: ./missing.yml\n", "bad.yml:3:13: create_job"),
        ("name: s\ntrigger: {type: cron, expression: '* * * * *'}\ncreate_job: ./broken.yml\n", "/broken.yml:5:"),
        ("name: s\ntrigger: {type: cron, expression: '* * * * *'}\ncreate_job: azureml:no_such_job\n", "create_job: job 'no_such_job' does not exist"),
        (
            "name: s\ntrigger: {type: cron, expression: '* * * * *'}\ncreate_job: {type: pipeline, job: ./pipe.yml, inputs: [1]}\n",
            "create_job.inputs: expected a mapping",
        ),
    ]
    for text, expected in cases:
        out = kiln(server, "schedule", "create", "-f", str(write(tmp_path / "bad.yml", text)))
        assert out.returncode != 0 and expected in out.stderr, (expected, out.stderr)
    assert server.api("GET", "/api/v1/schedules?disabled=include").json()["schedules"] == []
    bad = server.api("POST", "/api/v1/schedules", json={"spec": "name: s\ntrigger: {type: hourly}\ncreate_job: {command: echo}"})
    assert bad.status_code == 400 and "trigger.type" in bad.json()["message"], bad.text
    assert server.api("GET", "/api/v1/schedules/nope").status_code == 404
