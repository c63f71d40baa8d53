#!/usr/bin/env python3
"""Kiln's Bayesian sampler vs Optuna's default sampler (TPE), side by side.

Run from the repository root after `cargo build --release` (or pass --kiln):

    .venv/bin/python benches/sampler.py [--quick]

Both minimize Branin (2-D), Hartmann-6 and 5-D Rosenbrock (on [-5, 10]^5) with 50 trials, for
20 seeds each (5 with --quick), one trial at a time. Kiln's sampler runs in `kiln bench sampler`
(the same code a sweep's `sampling_algorithm: bayesian` uses), Optuna 5.0 in this process with
`TPESampler(seed=s)`, its default. The figure is the best regret (best value found minus the
function's known minimum) after 50 trials: its median over the seeds for each tool, and the
ratio optuna/kiln (above 1: Kiln found better optima). Also printed: the time Kiln's sampler
takes per suggestion once 200 trials are in (target: under 50 ms), and Optuna's, both in this
process tree. Optuna is installed into the running venv from benches/requirements-sampler.txt
if it is missing.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

try:
    import optuna
except ImportError:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", os.path.join(ROOT, "benches", "requirements-sampler.txt")], check=True)
    import optuna


def branin(x):
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x[1] - b * x[0] ** 2 + c * x[0] - 6) ** 2 + 10 * (1 - t) * math.cos(x[0]) + 10


ALPHA = [1.0, 1.2, 3.0, 3.2]
A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
P = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
]


def hartmann6(x):
    return -sum(ALPHA[i] * math.exp(-sum(A[i][j] * (x[j] - P[i][j]) ** 2 for j in range(6))) for i in range(4))


def rosenbrock(x):
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(len(x) - 1))


PROBLEMS = {
    "branin": ([(-5, 10), (0, 15)], 0.397887357729738, branin),
    "hartmann6": ([(0, 1)] * 6, -3.32236801141551, hartmann6),
    "rosenbrock5": ([(-5, 10)] * 5, 0.0, rosenbrock),
}


def optuna_regret(name, seed, trials):
    bounds, minimum, f = PROBLEMS[name]
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed), direction="minimize")
    study.optimize(lambda t: f([t.suggest_float(f"x{i}", lo, hi) for i, (lo, hi) in enumerate(bounds)]), n_trials=trials)
    return study.best_value - minimum


def optuna_suggest_time(trials):
    """Optuna's time per trial (its suggestion and bookkeeping) at `trials` trials, on Hartmann-6."""
    bounds, _, f = PROBLEMS["hartmann6"]
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    stamps = []

    def objective(t):
        stamps.append(time.perf_counter())
        return f([t.suggest_float(f"x{i}", lo, hi) for i, (lo, hi) in enumerate(bounds)])

    study.optimize(objective, n_trials=trials)
    gaps = [b - a for a, b in zip(stamps, stamps[1:])][-10:]
    return sum(gaps) / len(gaps)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kiln", default=os.path.join(ROOT, "target", "release", "kiln"))
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    seeds = 5 if args.quick else 20
    trials = 50
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    out = subprocess.run(
        [args.kiln, "bench", "sampler", "--trials", str(trials), "--seeds", str(seeds), "--timing-at", "200"],
        capture_output=True, text=True, check=True,
    ).stdout
    kiln = {name: [] for name in PROBLEMS}
    kiln_time = None
    for line in out.splitlines():
        d = json.loads(line)
        if "function" in d:
            kiln[d["function"]].append(d["regret"])
        else:
            kiln_time = d["suggest_s"]
    peer = {name: [optuna_regret(name, s, trials) for s in range(seeds)] for name in PROBLEMS}
    peer_time = optuna_suggest_time(200)

    print(f"Kiln bayesian (GP + expected improvement) vs Optuna {optuna.__version__} TPESampler (default);")
    print(f"{trials} trials, {seeds} seeds, median best regret (lower is better); ratio optuna/kiln (above 1: Kiln better)")
    print(f"{'function':14} {'kiln':>12} {'optuna':>12} {'ratio':>9}")
    result = {"trials": trials, "seeds": seeds, "functions": {}}
    no_worse = True
    better = False
    for name in PROBLEMS:
        k, o = statistics.median(kiln[name]), statistics.median(peer[name])
        ratio = o / k if k > 0 else math.inf
        no_worse &= k <= o
        better |= k < o
        print(f"{name:14} {k:12.4g} {o:12.4g} {ratio:8.1f}x")
        result["functions"][name] = {"kiln": k, "optuna": o, "kiln_all": kiln[name], "optuna_all": peer[name]}
    print(f"time per suggestion at 200 trials: kiln {kiln_time * 1000:.1f} ms, optuna {peer_time * 1000:.1f} ms (target: kiln < 50 ms)")
    met = no_worse and better and kiln_time < 0.05
    print(f"targets: no worse on every function {'met' if no_worse else 'NOT met'}, better on one {'met' if better else 'NOT met'}, "
          f"< 50 ms per suggestion {'met' if kiln_time < 0.05 else 'NOT met'}")
    result.update({"kiln_suggest_s": kiln_time, "optuna_suggest_s": peer_time, "targets_met": met})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
