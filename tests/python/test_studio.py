"""The studio in a real browser: Debian's chromium driven through chromedriver (selenium),
against a `kiln up` server populated by the stock mlflow client and a real job. Screenshots
of every page go to .test-artifacts/studio/ (or $KILN_TEST_ARTIFACTS)."""

import json
import os
import subprocess
import time

import pytest

from conftest import KILN_BIN, KilnServer, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARTIFACTS = os.path.join(os.environ.get("KILN_TEST_ARTIFACTS") or os.path.join(ROOT, ".test-artifacts"), "studio")


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update"):
        opts.add_argument(flag)
    # The driver is Debian's: given by path, Selenium Manager downloads nothing.
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=opts)
    os.makedirs(ARTIFACTS, exist_ok=True)
    yield driver
    driver.quit()


def shot(driver, name):
    driver.save_screenshot(os.path.join(ARTIFACTS, f"{name}.png"))


def open_page(driver, url):
    started = time.perf_counter()
    driver.get(url)
    return (time.perf_counter() - started) * 1000


def search(driver, text):
    """Submits the runs filter and waits for the new page (a click does not wait for it)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    old = driver.find_element(By.ID, "runs")
    box = driver.find_element(By.ID, "filter")
    box.clear()
    box.send_keys(text)
    driver.find_element(By.CSS_SELECTOR, "form.search button").click()
    WebDriverWait(driver, 10).until(EC.staleness_of(old))


def click_through(driver, css):
    """Clicks a link on the runs page and waits for the next page to replace the table."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    old = driver.find_element(By.ID, "runs")
    driver.find_element(By.CSS_SELECTOR, css).click()
    WebDriverWait(driver, 10).until(EC.staleness_of(old))


def text_of(driver, element_id):
    """An element's text read in one step in the page (live parts are swapped under us)."""
    return driver.execute_script(f"const e = document.getElementById('{element_id}'); return e ? e.textContent.trim() : null;")


def texts(driver, css):
    from selenium.webdriver.common.by import By

    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    import mlflow

    server = KilnServer(tmp_path / "data").start()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    mlflow.set_tracking_uri(server.url)
    mlflow.set_experiment("iris-sweep")
    for i, (model, acc) in enumerate([("tree", 0.91), ("logreg", 0.95), ("forest", 0.42)]):
        with mlflow.start_run(run_name=f"run-{model}"):
            mlflow.log_params({"model": model, "depth": i + 2})
            mlflow.set_tag("team", f"team-{i}")
            for step in range(20):
                mlflow.log_metric("loss", 1.0 / (step + 1) + i * 0.1, step=step)
            mlflow.log_metric("accuracy", acc)
    job = tmp_path / "job.yml"
    job.write_text("command: echo hello from the studio test\nenvironment: {image: python}\nexperiment_name: studio-jobs\n")
    out = subprocess.run([KILN_BIN, "--url", server.url, "-o", "json", "job", "create", "-f", str(job)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    name = json.loads(out.stdout)["name"]
    wait_until(lambda: server.api("GET", f"/api/v1/jobs/{name}").json()["status"] == "Completed", timeout=60)
    yield server, name
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    server.stop()


def test_home_experiments_runs_and_charts(browser, workspace):
    from selenium.webdriver.common.by import By

    server, job = workspace
    ms = open_page(browser, f"{server.url}/ui")
    print(f"home page: {ms:.0f} ms")
    assert browser.title.startswith("Home")
    assert job in texts(browser, "#recent-jobs td a")
    assert "iris-sweep" in texts(browser, "#experiments td a")
    assert not browser.find_elements(By.ID, "empty-state"), "a workspace with runs has no empty state"
    shot(browser, "home")

    browser.find_element(By.LINK_TEXT, "iris-sweep").click()
    assert texts(browser, "h1") == ["iris-sweep"]
    rows = browser.find_elements(By.CSS_SELECTOR, "#runs tbody tr")
    assert len(rows) == 3
    headers = texts(browser, "#runs th")
    assert "accuracy" in headers and "loss" in headers and "model" in headers
    shot(browser, "experiment")

    # The API's filter grammar, from the page's form.
    search(browser, "metrics.accuracy > 0.9 and params.model != 'tree'")
    names = texts(browser, "#runs tbody td:nth-child(2) a")
    assert names == ["run-logreg"], names
    # A click on a metric's header sorts by it (keeping the filter), best first; again, the
    # other way.
    search(browser, "")
    click_through(browser, "#runs th.metrics a[href*='accuracy']")
    assert texts(browser, "#runs tbody td:nth-child(2) a")[0] == "run-logreg"
    click_through(browser, "#runs th.metrics a[href*='accuracy']")
    assert texts(browser, "#runs tbody td:nth-child(2) a")[0] == "run-forest", (browser.current_url, texts(browser, "#runs tbody td:nth-child(2) a"), texts(browser, "#runs th.metrics a"))

    # Chosen columns, tags included.
    cols = browser.find_element(By.ID, "columns")
    cols.clear()
    cols.send_keys("metrics.accuracy,tags.team")
    search(browser, "")
    assert [t.rstrip(" ▲▼") for t in texts(browser, "#runs thead th")[-2:]] == ["accuracy", "team"]
    assert sorted(texts(browser, "#runs tbody td:last-child")) == ["team-0", "team-1", "team-2"]
    search(browser, "metrics.accuracy >>> 1")
    error = browser.find_element(By.ID, "filter-error").text
    assert "metrics.accuracy" in error or "Invalid" in error or "filter" in error.lower(), error
    shot(browser, "experiment-bad-filter")

    browser.get(f"{server.url}/ui/experiments")
    browser.find_element(By.LINK_TEXT, "iris-sweep").click()
    browser.find_element(By.LINK_TEXT, "run-tree").click()
    assert browser.find_element(By.ID, "run-status").text == "FINISHED"
    charts = {f.get_attribute("data-key"): f for f in browser.find_elements(By.CSS_SELECTOR, "figure.metric-chart")}
    assert set(charts) == {"accuracy", "loss"}
    assert charts["loss"].find_element(By.CSS_SELECTOR, "svg").get_attribute("data-points") == "20"
    params = dict(zip(texts(browser, "#params th"), texts(browser, "#params td")))
    assert params == {"depth": "2", "model": "tree"}
    shot(browser, "run")

    # A job's run is a run like any other, and links to its job.
    browser.get(f"{server.url}/ui/runs/{job}")
    assert browser.find_element(By.ID, "run-status").text == "FINISHED"
    wait_until(lambda: "hello from the studio test" in (text_of(browser, "run-log") or ""), timeout=10)
    browser.find_element(By.ID, "source-job").click()
    assert text_of(browser, "job-status") == "Completed"

    # A parent run lists its children.
    import mlflow

    with mlflow.start_run(run_name="parent") as parent:
        with mlflow.start_run(run_name="child-a", nested=True):
            pass
        with mlflow.start_run(run_name="child-b", nested=True):
            pass
    browser.get(f"{server.url}/ui/runs/{parent.info.run_id}")
    assert [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#children a")] == ["child-a", "child-b"]

    # Unknown objects get a 404 page that says so; assets are served from the binary.
    browser.get(f"{server.url}/ui/runs/nope")
    assert "Not Found" in browser.title or "404" in browser.title
    import requests

    assert requests.get(f"{server.url}/ui/runs/nope").status_code == 404
    css = requests.get(f"{server.url}/ui/static/studio.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert requests.get(f"{server.url}/ui/static/studio.css", headers={"If-None-Match": css.headers["etag"]}).status_code == 304


def test_a_running_run_updates_without_a_reload(browser, tmp_path, monkeypatch):
    import mlflow
    from selenium.webdriver.common.by import By

    server = KilnServer(tmp_path / "data").start()
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        mlflow.set_tracking_uri(server.url)
        mlflow.set_experiment(experiment_id="0")
        browser.get(f"{server.url}/ui")
        assert browser.find_element(By.ID, "empty-state").is_displayed()
        assert "kiln job create" in browser.find_element(By.ID, "empty-state").text
        shot(browser, "empty")
        run = mlflow.start_run(run_name="live")
        mlflow.log_metric("loss", 1.0, step=0)
        browser.get(f"{server.url}/ui/runs/{run.info.run_id}")
        marker = browser.execute_script("window.__kiln_marker = 1; return window.__kiln_marker;")
        assert marker == 1
        assert browser.find_element(By.ID, "run-status").text == "RUNNING"
        for step in range(1, 6):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metric("accuracy", 0.5)
        wait_until(lambda: browser.execute_script("return document.querySelectorAll('figure.metric-chart').length") == 2, timeout=15)
        mlflow.end_run()
        wait_until(lambda: text_of(browser, "run-status") == "FINISHED", timeout=15)
        assert browser.execute_script("return window.__kiln_marker;") == 1, "the page was never reloaded"
        shot(browser, "run-live")
    finally:
        mlflow.set_tracking_uri(None)
        server.stop()


@pytest.fixture
def job_server(tmp_path):
    import sys

    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    server = KilnServer(tmp_path / "data", env={"PATH": path}).start()
    yield server
    server.stop()


def submit(server, tmp_path, name, text):
    spec = tmp_path / name
    spec.write_text(text)
    out = subprocess.run([KILN_BIN, "--url", server.url, "-o", "json", "job", "create", "-f", str(spec)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["name"]


def ended(server, name, timeout=120):
    job = {}

    def done():
        nonlocal job
        job = server.api("GET", f"/api/v1/jobs/{name}").json()
        return job["status"] in ("Completed", "Failed", "Canceled")

    wait_until(done, timeout=timeout)
    return job


PIPELINE = """type: pipeline
display_name: three steps
jobs:
  prep:
    type: command
    command: echo rows > ${{outputs.clean}}/data.txt
    environment: {image: python}
    outputs: {clean: {type: uri_folder}}
  train:
    type: command
    command: cat ${{inputs.data}}/data.txt > ${{outputs.model}}/model.txt
    environment: {image: python}
    inputs: {data: "${{parent.jobs.prep.outputs.clean}}"}
    outputs: {model: {type: uri_folder}}
  report:
    type: command
    command: ls ${{inputs.model}} ${{inputs.data}}
    environment: {image: python}
    inputs: {model: "${{parent.jobs.train.outputs.model}}", data: "${{parent.jobs.prep.outputs.clean}}"}
"""

SWEEP = """type: sweep
trial:
  command: >-
    python -c "import mlflow; mlflow.log_metric('score', ${{search_space.a}} * len('${{search_space.b}}'))"
  environment: {image: python}
sampling_algorithm: grid
search_space:
  a: {type: choice, values: [1, 2]}
  b: {type: choice, values: [x, yy]}
objective: {goal: maximize, primary_metric: score}
limits: {max_total_trials: 4, max_concurrent_trials: 2}
"""


def test_job_pages_draw_the_pipeline_the_sweep_and_stream_a_live_log(browser, job_server, tmp_path):
    from selenium.webdriver.common.by import By

    server = job_server
    first = submit(server, tmp_path, "pipe.yml", PIPELINE)
    assert ended(server, first)["status"] == "Completed"
    second = submit(server, tmp_path, "pipe.yml", PIPELINE)
    assert ended(server, second)["status"] == "Completed"
    browser.get(f"{server.url}/ui/jobs/{second}")
    nodes = {g.get_attribute("data-id"): g for g in browser.find_elements(By.CSS_SELECTOR, "#dag g.node")}
    assert set(nodes) == {"prep", "train", "report"}
    assert len(browser.find_elements(By.CSS_SELECTOR, "#dag path.edge")) == 3
    assert all("reused" in g.get_attribute("class") for g in nodes.values()), "an unchanged pipeline reuses every step"
    reuse = texts(browser, "#steps td.reuse")
    assert all(r.startswith("reused job") for r in reuse), reuse
    x = lambda g: float(g.find_element(By.CSS_SELECTOR, "rect").get_attribute("x"))
    assert x(nodes["prep"]) < x(nodes["train"]) < x(nodes["report"]), "data flows left to right"
    shot(browser, "pipeline")

    sweep = submit(server, tmp_path, "sweep.yml", SWEEP)
    assert ended(server, sweep)["status"] == "Completed"
    browser.get(f"{server.url}/ui/jobs/{sweep}")
    assert browser.find_element(By.CSS_SELECTOR, "#parallel svg").get_attribute("data-trials") == "4"
    rows = browser.find_elements(By.CSS_SELECTOR, "#trials tbody tr")
    assert len(rows) == 4
    best = browser.find_element(By.CSS_SELECTOR, "#trials tr.best")
    assert best.find_elements(By.CSS_SELECTOR, "td")[-1].text == "4", "a=2, b=yy scores 4"
    shot(browser, "sweep")

    slow = submit(
        server,
        tmp_path,
        "slow.yml",
        "command: for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do echo tick $i; sleep 0.5; done\n"
        "environment: {image: python}\n",
    )
    browser.get(f"{server.url}/ui/jobs/{slow}")
    wait_until(lambda: "tick 3" in (text_of(browser, "job-log") or ""), timeout=20)
    assert text_of(browser, "job-status") in ("Running", "Starting", "Preparing", "Queued")
    shot(browser, "job-live-log")
    import requests

    # Another site's page cannot cancel it through the user's browser.
    forged = requests.post(f"{server.url}/ui/jobs/{slow}/cancel", headers={"Sec-Fetch-Site": "cross-site"}, allow_redirects=False)
    assert forged.status_code == 403
    browser.find_element(By.ID, "cancel").click()
    wait_until(lambda: text_of(browser, "job-status") == "Canceled", timeout=20)
    assert "tick 20" not in text_of(browser, "job-log")

    browser.get(f"{server.url}/ui/jobs?status=Canceled")
    assert texts(browser, "#jobs td a")[0] == slow
    browser.get(f"{server.url}/ui/jobs?status=Completed")
    assert slow not in texts(browser, "#jobs td a")


def test_compare_runs_and_browse_artifacts(browser, workspace, tmp_path):
    import mlflow
    from selenium.webdriver.common.by import By

    server, _ = workspace
    with mlflow.start_run(run_name="with-files") as run:
        (tmp_path / "report").mkdir()
        (tmp_path / "report" / "summary.json").write_text(json.dumps({"accuracy": 0.93, "classes": 3}))
        (tmp_path / "report" / "scores.csv").write_text("name,score\na,1\nb,2\n")
        (tmp_path / "notes.txt").write_text("trained on iris\n")
        (tmp_path / "odd").mkdir()
        (tmp_path / "odd" / "a&b +1.txt").write_text("odd name\n")
        mlflow.log_artifacts(str(tmp_path / "report"), artifact_path="report")
        mlflow.log_artifact(str(tmp_path / "notes.txt"))
        mlflow.log_artifact(str(tmp_path / "odd" / "a&b +1.txt"))
    browser.get(f"{server.url}/ui/runs/{run.info.run_id}")
    listed = texts(browser, "#artifact-list a")
    assert listed[0].endswith("report") and "notes.txt" in listed, listed
    browser.find_element(By.CSS_SELECTOR, 'a[data-path="report"]').click()
    browser.find_element(By.CSS_SELECTOR, 'a[data-path="report/summary.json"]').click()
    assert '"accuracy": 0.93' in browser.find_element(By.ID, "preview").text
    browser.find_element(By.CSS_SELECTOR, 'a[data-path="report/scores.csv"]').click()
    assert texts(browser, "#preview table.csv th") == ["name", "score"]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#preview table.csv tbody tr")) == 2
    shot(browser, "artifacts")
    browser.get(f"{server.url}/ui/runs/{run.info.run_id}")
    browser.find_element(By.CSS_SELECTOR, 'a[data-path="a&b +1.txt"]').click()
    assert "odd name" in browser.find_element(By.ID, "preview").text
    import requests as rq

    assert rq.get(f"{server.url}/ui/runs/{run.info.run_id}?artifact=nope/missing.txt").status_code == 404

    # Select three runs of the experiment and compare them.
    exp = mlflow.get_experiment_by_name("iris-sweep").experiment_id
    browser.get(f"{server.url}/ui/experiments/{exp}")
    boxes = browser.find_elements(By.CSS_SELECTOR, "#runs input[type=checkbox]")
    for b in boxes[:3]:
        b.click()
    browser.find_element(By.ID, "compare").click()
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 10).until(EC.presence_of_element_located((By.ID, "compare-params")))
    assert texts(browser, "h1") == ["Compare 3 runs"]
    loss = browser.find_element(By.CSS_SELECTOR, 'figure[data-key="loss"] svg')
    series = loss.get_attribute("data-series")
    paths = loss.find_elements(By.CSS_SELECTOR, "path.line")
    assert series == "3" and len(paths) == 3
    differs = {r.find_element(By.TAG_NAME, "th").text for r in browser.find_elements(By.CSS_SELECTOR, "#compare-params tr.differs")}
    assert "model" in differs, differs
    shot(browser, "compare")
    import requests

    assert requests.get(f"{server.url}/ui/compare").status_code == 400


def test_endpoint_page_shows_deployments_traffic_and_sends_a_test_request(browser, tmp_path):
    import requests
    from selenium.webdriver.common.by import By

    server = KilnServer(tmp_path / "data").start()
    try:
        fixtures = os.path.join(ROOT, "tests", "fixtures", "onnx")
        run = lambda *a: subprocess.run([KILN_BIN, "--url", server.url, *a], capture_output=True, text=True, check=True)
        run("model", "create", "--name", "iris-onnx", "--path", os.path.join(fixtures, "iris_logreg.onnx"))
        (tmp_path / "ep.yml").write_text("name: iris-ep\n")
        run("online-endpoint", "create", "-f", str(tmp_path / "ep.yml"))
        for dep, model in [("blue", "azureml:iris-onnx:1"), ("green", "azureml:iris-onnx:1")]:
            (tmp_path / f"{dep}.yml").write_text(f"name: {dep}\nendpoint_name: iris-ep\nmodel: {model}\n")
            run("online-deployment", "create", "-f", str(tmp_path / f"{dep}.yml"))
        run("online-endpoint", "update", "-n", "iris-ep", "--traffic", "blue=80 green=20")
        key = json.loads(run("-o", "json", "online-endpoint", "get-credentials", "-n", "iris-ep").stdout)["primaryKey"]
        for _ in range(30):
            r = requests.post(f"{server.url}/endpoints/iris-ep/score", json={"inputs": [[5.1, 3.5, 1.4, 0.2]]},
                              headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 200

        browser.get(f"{server.url}/ui/endpoints")
        browser.find_element(By.LINK_TEXT, "iris-ep").click()
        rows = {r.get_attribute("data-deployment"): r for r in browser.find_elements(By.CSS_SELECTOR, "#deployments tbody tr")}
        assert set(rows) == {"blue", "green"}
        assert rows["blue"].find_element(By.CSS_SELECTOR, "td.traffic").text == "80%"
        served = sum(int(r.find_element(By.CSS_SELECTOR, "td.requests").text) for r in rows.values())
        assert served == 30
        assert "healthy" in rows["green"].text
        assert browser.find_element(By.CSS_SELECTOR, "#requests-chart svg").get_attribute("data-series") == "2"

        # The test form: the sample body is the model's input shape; send it to green.
        from selenium.webdriver.support.ui import Select

        Select(browser.find_element(By.ID, "score-deployment")).select_by_value("green")
        box = browser.find_element(By.ID, "score-body")
        box.clear()
        box.send_keys(json.dumps({"inputs": [[6.3, 3.3, 6.0, 2.5]]}))
        browser.find_element(By.ID, "score-send").click()
        wait_until(lambda: (text_of(browser, "score-response") or "").startswith("200"), timeout=10)
        answer = text_of(browser, "score-response")
        assert "green" in answer.splitlines()[0] and '"label"' in answer, answer
        shot(browser, "endpoint")

        alias = requests.post(f"{server.url}/api/2.0/mlflow/registered-models/alias",
                              json={"name": "iris-onnx", "alias": "champion", "version": "1"})
        assert alias.status_code == 200, alias.text
        browser.get(f"{server.url}/ui/models")
        cells = texts(browser, "#models td")
        assert "iris-onnx" in cells and "@champion" in cells, cells
        browser.get(f"{server.url}/ui/models#model-iris-onnx-1")
        assert "@champion" in browser.find_element(By.ID, "model-iris-onnx-1").text, "a deep link to one version"
        for page in ("data", "environments", "components", "schedules"):
            browser.get(f"{server.url}/ui/{page}")
            assert browser.find_element(By.ID, f"{page}-empty").is_displayed()
    finally:
        server.stop()


def test_page_times_with_ten_thousand_runs_and_a_million_point_metric(browser, tmp_path):
    """Measured, not asserted: the times are printed in the test output."""
    import concurrent.futures
    import requests
    from selenium.webdriver.common.by import By

    server = KilnServer(tmp_path / "data").start()
    try:
        api = f"{server.url}/api/2.0/mlflow"
        exp = requests.post(f"{api}/experiments/create", json={"name": "big"}).json()["experiment_id"]
        session = requests.Session()

        def make(i):
            s = requests.Session()
            run = s.post(f"{api}/runs/create", json={"experiment_id": exp, "run_name": f"r{i}", "start_time": i}).json()
            rid = run["run"]["info"]["run_id"]
            s.post(f"{api}/runs/log-batch", json={
                "run_id": rid,
                "metrics": [{"key": "acc", "value": (i % 997) / 997, "timestamp": i, "step": 0}],
                "params": [{"key": "i", "value": str(i)}],
            }).raise_for_status()

        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(make, range(10_000)))
        print(f"\n10,000 runs created in {time.perf_counter() - started:.1f} s")

        big = session.post(f"{api}/runs/create", json={"experiment_id": exp, "run_name": "long"}).json()["run"]["info"]["run_id"]
        started = time.perf_counter()
        batches = [
            json.dumps({"run_id": big, "metrics": [
                {"key": "loss", "value": 1.0 / (b * 1000 + j + 1), "timestamp": b, "step": b * 1000 + j} for j in range(1000)]})
            for b in range(1000)
        ]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda body: requests.post(f"{api}/runs/log-batch", data=body, headers={"Content-Type": "application/json"}).raise_for_status(), batches))
        print(f"1,000,000 points logged in {time.perf_counter() - started:.1f} s")

        ms = open_page(browser, f"{server.url}/ui/experiments/{exp}")
        rows = browser.find_elements(By.CSS_SELECTOR, "#runs tbody tr")
        print(f"experiment page with 10,001 runs (first 100 shown): {ms:.0f} ms")
        assert len(rows) == 100
        assert browser.find_element(By.ID, "next-page").is_displayed()
        ms = open_page(browser, f"{server.url}/ui/runs/{big}")
        svg = browser.find_element(By.CSS_SELECTOR, 'figure[data-key="loss"] svg')
        print(f"run page with a 1,000,000-point metric: {ms:.0f} ms ({svg.get_attribute('data-points')} points drawn)")
        assert 0 < int(svg.get_attribute("data-points")) <= 320
        ms = open_page(browser, f"{server.url}/ui/runs/{big}?scale=log&smooth=0.6&x=time")
        print(f"the same, log scale, smoothed, by time: {ms:.0f} ms")
        assert "(log10)" in browser.find_element(By.CSS_SELECTOR, 'figure[data-key="loss"] svg title').get_attribute("textContent")
        shot(browser, "million-points")
    finally:
        server.stop()
