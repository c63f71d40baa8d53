#!/usr/bin/env python3
"""Kiln pipeline jobs vs the Kubeflow Pipelines local runner (kfp.local.SubprocessRunner).

Run from the repository root after `cargo build --release` (or pass --kiln):

    .venv/bin/python benches/pipelines.py [--quick]

Two pipelines of no-op steps, so that all of their time is the tool's own overhead:
- chain: N steps, each consuming the previous step's output folder (artifact);
- fan-out: one root step and N independent steps, each consuming the root's output.
N is 100 (20 with --quick). Kiln runs them with settings.force_rerun, so that every step runs,
on a compute target of 8 slots; the figure is the wall time from the submit request to the
pipeline's Completed, and the overhead per step is that time over the number of steps. A third
figure is the unchanged chain resubmitted without force_rerun, where every step is reused by
content.

The peer is kfp's local runner (SubprocessRunner(use_venv=False): no Docker here), with the same
pipelines written as lightweight Python components, timed around the pipeline call. It runs its
tasks one after another, so it is timed on 10 steps (5 with --quick) and its cost per step
extrapolated linearly. Two variants: `@dsl.component` as written by default, where every task
first runs `pip install kfp==<version> --no-deps` (already satisfied), and "lean", with
install_kfp_package=False, the peer's best case. Its own local cache
(kfp.local.init(enable_caching=True)) is the peer of Kiln's reuse. kfp lives in its own venv,
benches/.venv-kfp (made on first use from benches/requirements.txt, whose pins clash with the
test suite's), and this script runs its kfp part there, as a child process.

Prints each figure and the ratio kfp/kiln (higher means Kiln is faster), whether the targets
are met, and one JSON line with everything.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import requests

from jobs import start_kiln, wait  # the same server start and job polling as benches/jobs.py

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(ROOT, "benches")
TARGET_STEP_S = 0.020  # overhead per step
TARGET_RATIO = 20.0  # times faster than the peer


# ---- Kiln ------------------------------------------------------------------------------------


def submit(url, spec):
    r = requests.post(url + "/api/v1/jobs", json={"spec": spec, "source": "bench.yml"}, timeout=60)
    if r.status_code != 200:
        hint = " (a kiln built before pipeline jobs? rebuild it)" if "expected 'command' here" in r.text else ""
        raise RuntimeError(f"kiln refused the pipeline: {r.status_code} {r.text[:500]}{hint}")
    return r.json()["name"]


def pipeline_spec(shape, n, force_rerun):
    """A pipeline job of no-op steps: a chain of n, or a root and n steps fanning out from it."""

    def step(after=None):
        s = {"command": "true", "environment": {"image": "python"}}
        if after:
            s["inputs"] = {"x": "${{parent.jobs.%s.outputs.out}}" % after}
        s["outputs"] = {"out": {"type": "uri_folder"}}
        return s

    if shape == "chain":
        jobs = {f"s{i}": step(f"s{i - 1}" if i else None) for i in range(n)}
    else:
        jobs = {"root": step(), **{f"s{i}": step("root") for i in range(n)}}
    spec = {"type": "pipeline", "compute": "bench", "jobs": jobs}
    if force_rerun:
        spec["settings"] = {"force_rerun": True}
    return json.dumps(spec)


def kiln_pipeline(url, spec):
    """Wall time from the submit request to Completed; the steps, and how many were reused."""
    t0 = time.perf_counter()
    name = submit(url, spec)
    job = wait(url, name)
    wall = time.perf_counter() - t0
    nodes = requests.get(f"{url}/api/v1/jobs/{name}/graph", timeout=30).json()["nodes"]
    if job["status"] != "Completed" or any(n["status"] != "Completed" for n in nodes):
        bad = [(n["name"], n["status"], n["reuse"]) for n in nodes if n["status"] != "Completed"][:5]
        raise RuntimeError(f"pipeline {name} ended {job['status']}: {job.get('failure')} {bad}")
    step = requests.get(f"{url}/api/v1/jobs/{nodes[-1]['job']}", timeout=30).json()
    assert step["compute"] == "bench", step["compute"]
    return wall, len(nodes), sum(1 for n in nodes if n["reused_from"])


def kiln_figures(args, tmp, n, reps):
    proc, url = start_kiln(args.kiln, os.path.join(tmp, "data"), os.path.join(tmp, "cache"))
    try:
        requests.post(url + "/api/v1/computes", json={"name": "bench", "max_concurrent_jobs": 8}, timeout=30).raise_for_status()
        kiln_pipeline(url, pipeline_spec("chain", 3, True))  # warm-up
        out = {}
        for shape in ("chain", "fanout"):
            spec = pipeline_spec(shape, n, True)
            walls = []
            for _ in range(reps):
                wall, steps, reused = kiln_pipeline(url, spec)
                assert reused == 0, f"force_rerun, yet {reused} steps were reused"
                walls.append(wall)
            out[shape] = {"steps": steps, "wall_s": statistics.median(walls), "walls_s": walls}
        # The unchanged chain again, without force_rerun: every step is reused by content.
        spec = pipeline_spec("chain", n, False)
        kiln_pipeline(url, spec)  # the first of its kind records (or reuses) each step
        walls = []
        for _ in range(reps):
            wall, steps, reused = kiln_pipeline(url, spec)
            assert reused == steps, f"only {reused} of {steps} steps were reused"
            walls.append(wall)
        out["chain_reused"] = {"steps": steps, "wall_s": statistics.median(walls), "walls_s": walls}
    finally:
        proc.terminate()
        proc.wait()
    for f in out.values():
        f["per_step_s"] = f["wall_s"] / f["steps"]
    return out


# ---- kfp (runs in benches/.venv-kfp) ----------------------------------------------------------


def pinned_kfp():
    with open(os.path.join(HERE, "requirements.txt")) as f:
        for line in f:
            if line.strip().startswith("kfp=="):
                return line.strip().split("==", 1)[1]
    raise RuntimeError("benches/requirements.txt pins no kfp")


def kfp_python(venv):
    """The venv's interpreter with the pinned kfp, made or updated when it is not."""
    python = os.path.join(venv, "bin", "python")
    want = pinned_kfp()
    probe = "import importlib.metadata as m; print(m.version('kfp'))"
    if os.path.exists(python):
        have = subprocess.run([python, "-c", probe], capture_output=True, text=True).stdout.strip()
        if have == want:
            return python
    else:
        print(f"creating {venv} (first use) ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    print(f"installing kfp=={want} into {venv} ...", file=sys.stderr, flush=True)
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", os.path.join(HERE, "requirements.txt")],
        check=True,
    )
    return python


def kfp_figures(python, tmp, n, reps):
    cfg = {"n": n, "reps": reps, "work": os.path.join(tmp, "kfp"), "result": os.path.join(tmp, "kfp-result.json")}
    log = os.path.join(tmp, "kfp.log")
    env = dict(os.environ, PATH=os.path.dirname(python) + os.pathsep + os.environ["PATH"])
    env.pop("PYTHONPATH", None)
    with open(log, "w") as f:
        out = subprocess.run(
            [python, os.path.abspath(__file__), "--kfp-child", json.dumps(cfg)],
            stdout=f, stderr=subprocess.STDOUT, env=env, cwd=tmp, timeout=3600,
        )
    if out.returncode != 0:
        with open(log) as f:
            raise RuntimeError("the kfp run failed:\n" + f.read()[-3000:])
    with open(cfg["result"]) as f:
        return json.load(f)


def kfp_child(cfg):
    """In the kfp venv: the same pipelines as lightweight components on the subprocess runner."""
    import logging

    import kfp
    from kfp import dsl, local

    def components(install_kfp_package):
        # A no-op that gives its output an empty file: kfp's cache treats an output whose
        # file is missing as a miss.
        @dsl.component(base_image="python:3.11", install_kfp_package=install_kfp_package)
        def first(out: dsl.Output[dsl.Artifact]):
            open(out.path, "w").close()

        @dsl.component(base_image="python:3.11", install_kfp_package=install_kfp_package)
        def then(x: dsl.Input[dsl.Artifact], out: dsl.Output[dsl.Artifact]):
            open(out.path, "w").close()

        return first, then

    def make(shape, n, install_kfp_package):
        first, then = components(install_kfp_package)

        @dsl.pipeline(name=f"bench-{shape}-{n}")
        def pipe():
            root = first()
            prev = root
            for _ in range(n - 1 if shape == "chain" else n):
                prev = then(x=(prev if shape == "chain" else root).outputs["out"])

        return pipe, (n if shape == "chain" else n + 1)

    hits = []

    class CacheHits(logging.Handler):
        def emit(self, record):
            if "cache hit" in record.getMessage():
                hits.append(record.getMessage())

    logging.getLogger().addHandler(CacheHits())
    logging.getLogger().setLevel(logging.INFO)

    work, n = cfg["work"], cfg["n"]
    runner = local.SubprocessRunner(use_venv=False)

    def init(**kw):
        local.init(runner=runner, pipeline_root=os.path.join(work, "outputs"), workspace_root=os.path.join(work, "ws"), **kw)

    def timed(pipe):
        t0 = time.perf_counter()
        pipe()
        return time.perf_counter() - t0

    os.makedirs(os.path.join(work, "ws"), exist_ok=True)
    init()
    result = {"kfp_version": kfp.__version__}
    # As written by default, each task starts with `pip install kfp==<this version> --no-deps`
    # (already satisfied here); with install_kfp_package=False it does not: the peer's best case.
    for install, suffix in ((True, "_default"), (False, "")):
        timed(make("chain", 1, install)[0])  # warm-up
        for shape in ("chain", "fanout"):
            pipe, steps = make(shape, n, install)
            walls = [timed(pipe) for _ in range(cfg["reps"])]
            result[shape + suffix] = {"steps": steps, "wall_s": statistics.median(walls), "walls_s": walls}
    # The same chain with kfp's local cache on: once to fill it, then timed.
    init(enable_caching=True, cache_root=os.path.join(work, "cache"))
    pipe, steps = make("chain", n, False)
    timed(pipe)
    hits.clear()
    result["chain_cached"] = {"steps": steps, "wall_s": timed(pipe), "cache_hits": len(hits)}
    assert len(hits) == steps, f"only {len(hits)} of {steps} kfp tasks were cache hits"
    for f in result.values():
        if isinstance(f, dict):
            f["per_step_s"] = f["wall_s"] / f["steps"]
    with open(cfg["result"], "w") as f:
        json.dump(result, f)


# ---- report -----------------------------------------------------------------------------------


def ms(seconds):
    return f"{seconds * 1000:>8.2f} ms/step"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kiln", default=os.path.join(ROOT, "target/release/kiln"))
    ap.add_argument("--quick", action="store_true", help="20 steps for Kiln, 5 for kfp, one run each")
    ap.add_argument("--kfp-venv", default=os.path.join(HERE, ".venv-kfp"), help="where kfp is installed (made on first use)")
    ap.add_argument("--kfp-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.kfp_child:
        return kfp_child(json.loads(args.kfp_child))
    n = 20 if args.quick else 100
    n_peer = 5 if args.quick else 10
    reps = 1 if args.quick else 3

    python = kfp_python(args.kfp_venv)  # before any clock: the first use installs kfp
    tmp = tempfile.mkdtemp(prefix="kiln-bench-pipelines-")
    try:
        print(f"running {n}-step pipelines on kiln ...", file=sys.stderr, flush=True)
        kiln = kiln_figures(args, tmp, n, reps)
        print(f"running {n_peer}-step pipelines on kfp's local runner ...", file=sys.stderr, flush=True)
        peer = kfp_figures(python, tmp, n_peer, reps)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"Kiln {args.kiln} vs kfp {peer['kfp_version']} local SubprocessRunner(use_venv=False); {os.cpu_count()} cores")
    print(f"no-op steps; overhead per step = wall time (submit to Completed) / steps; median of {reps}")
    print(f"kfp is timed on {n_peer}-step pipelines and its cost per step extrapolated linearly to {n};")
    print("'kfp' is @dsl.component as written by default (every task first runs `pip install kfp --no-deps`),")
    print("'kfp lean' the same with install_kfp_package=False, the peer's best case")
    print(f"{'':<34}{'kiln':>16}{'kfp':>18}{'ratio':>9}{'kfp lean':>18}{'ratio':>9}")
    ratios = {}
    for key, label in (("chain", f"chain of {n}"), ("fanout", f"fan-out 1+{n}")):
        k, d, b = kiln[key]["per_step_s"], peer[key + "_default"]["per_step_s"], peer[key]["per_step_s"]
        ratios[key] = {"kfp": d / k, "kfp_lean": b / k}
        print(f"{label:<34}{ms(k):>16}{ms(d):>18}{d / k:>8.1f}x{ms(b):>18}{b / k:>8.1f}x")
    k, c = kiln["chain_reused"]["per_step_s"], peer["chain_cached"]["per_step_s"]
    ratios["chain_reused"] = {"kfp_cached": c / k, "kfp_uncached": peer["chain_default"]["per_step_s"] / k,
                              "kfp_lean_uncached": peer["chain"]["per_step_s"] / k}
    print(f"{'chain again, unchanged (reuse)':<34}{ms(k):>16}{ms(c):>18}{c / k:>8.1f}x   (kfp with its local cache on)")
    print(f"  kiln's reused chain vs kfp's chain without its cache (its default): {ratios['chain_reused']['kfp_uncached']:.1f}x, "
          f"lean {ratios['chain_reused']['kfp_lean_uncached']:.1f}x")
    for key, theirs, label in (("chain", "chain", "chain"), ("fanout", "fanout", "fan-out"),
                               ("chain_reused", "chain_cached", "reused chain")):
        s, steps = kiln[key], kiln[key]["steps"]
        line = f"  {label}: kiln ran {steps} steps in {s['wall_s']:.3f} s"
        for name in ((theirs + "_default", "kfp"), (theirs, "kfp lean")) if key != "chain_reused" else ((theirs, "kfp cached"),):
            p = peer[name[0]]
            line += f"; {name[1]} {p['steps']} in {p['wall_s']:.3f} s, so {steps} in {p['per_step_s'] * steps:.1f} s"
        print(line)
    print("  (kfp's local runner runs tasks one at a time; kiln runs the fan-out 8 steps at a time on this compute target)")
    met = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    for key, label in (("chain", "chain"), ("fanout", "fan-out")):
        r = ratios[key]
        print(f"target {label}: <= {TARGET_STEP_S * 1000:.0f} ms/step: {met(kiln[key]['per_step_s'] <= TARGET_STEP_S)}; "
              f">= {TARGET_RATIO:.0f}x faster than kfp: {met(r['kfp'] >= TARGET_RATIO)} ({r['kfp']:.1f}x), "
              f"than kfp lean: {met(r['kfp_lean'] >= TARGET_RATIO)} ({r['kfp_lean']:.1f}x)")
    print(json.dumps({"kiln": kiln, "kfp": peer, "ratios": ratios,
                      "scale": {"steps": n, "kfp_steps": n_peer, "reps": reps, "slots": 8}}))


if __name__ == "__main__":
    main()
