"""Kiln's batch scoring driver: the command of the job a batch endpoint invocation creates.

It lists the input files (a folder, recursively and in name order, or one file), splits them
into mini-batches of --mini-batch-size files, and scores them with --concurrency processes:
  script  an Azure ML batch scoring script: init() once per process, then run(mini_batch)
          with the mini-batch's file paths; it returns a pandas DataFrame or a list, one row
          per input that succeeded;
  mlflow  an MLflow model (python_function flavor): each file is read with pandas (CSV, or
          Parquet by extension) and predicted; rows are (file, row, prediction).
A mini-batch that fails (or takes longer than --timeout seconds) is tried again up to
--max-retries times; its files then count as failed. More failed files than
--error-threshold (-1: any number) fails the job. With --output-action append_row, the rows
are appended to <output>/<output-file-name> (CSV, no header) in mini-batch order; with
summary_only the script writes its own files under AZUREML_BI_OUTPUT_PATH.
"""

import argparse
import concurrent.futures
import importlib.util
import os
import sys
import time
import traceback

STATE = {}


def model_dir(model, root_name, work):
    """AZUREML_MODEL_DIR: a folder holding the model under its own name, as Azure ML lays it out."""
    if os.path.basename(model.rstrip("/")) != root_name and os.path.exists(os.path.join(model, root_name)):
        return model  # the input is the folder that holds the model file
    root = os.path.join(work, "azureml-models")
    os.makedirs(root, exist_ok=True)
    link = os.path.join(root, root_name or os.path.basename(model.rstrip("/")))
    if not os.path.lexists(link):
        os.symlink(model, link)
    return root


def init_worker(mode, model, script):
    if mode == "mlflow":
        import mlflow.pyfunc

        STATE["model"] = mlflow.pyfunc.load_model(model)
    else:
        path = os.path.abspath(script)
        sys.path.insert(0, os.path.dirname(path))
        spec = importlib.util.spec_from_file_location("batch_score", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for fn in ("init", "run"):
            if not callable(getattr(module, fn, None)):
                raise AttributeError(f"the scoring script {script} has no {fn}() function")
        module.init()
        STATE["module"] = module


def read_table(path):
    import pandas as pd

    if path.lower().endswith(".parquet"):
        return pd.read_parquet(path)
    return pd.read_csv(path)


def score_batch(mode, files):
    """Scores one mini-batch; returns its rows as text lines (CSV, no header)."""
    import pandas as pd

    if mode == "mlflow":
        frames = []
        for f in files:
            df = read_table(f)
            predictions = STATE["model"].predict(df)
            if isinstance(predictions, pd.DataFrame):
                out = predictions.copy()
            else:
                values = list(predictions.tolist() if hasattr(predictions, "tolist") else predictions)
                out = pd.DataFrame({"prediction": values})
            out.insert(0, "row", range(len(out)))
            out.insert(0, "file", os.path.basename(f))
            frames.append(out)
        result = pd.concat(frames) if frames else pd.DataFrame()
    else:
        result = STATE["module"].run(list(files))
    if isinstance(result, pd.DataFrame):
        text = result.to_csv(header=False, index=False)
        return [line for line in text.splitlines() if line]
    return [str(item) for item in (result or [])]


def list_inputs(path):
    if os.path.isfile(path):
        return [path]
    found = []
    for root, dirs, names in os.walk(path):
        dirs.sort()
        for n in sorted(names):
            found.append(os.path.join(root, n))
    return found


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--mode", choices=["mlflow", "script"], required=True)
    ap.add_argument("--model", default="")
    ap.add_argument("--model-root-name", default="")
    ap.add_argument("--script", default="")
    ap.add_argument("--mini-batch-size", type=int, default=10)
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--output-action", default="append_row")
    ap.add_argument("--output-file-name", default="predictions.csv")
    ap.add_argument("--max-retries", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--error-threshold", type=int, default=-1)
    args = ap.parse_args()

    os.makedirs(args.output, exist_ok=True)
    os.environ["AZUREML_BI_OUTPUT_PATH"] = args.output
    if args.model:
        os.environ["AZUREML_MODEL_DIR"] = model_dir(args.model, args.model_root_name, os.getcwd())
    files = list_inputs(args.input)
    size = max(1, args.mini_batch_size)
    batches = [files[i : i + size] for i in range(0, len(files), size)]
    print(f"[kiln-batch] {len(files)} files in {len(batches)} mini-batches of up to {size}, "
          f"{args.concurrency} at a time ({args.mode})", flush=True)
    started = time.time()
    results = {}
    failed_files = 0
    attempts = {i: 0 for i in range(len(batches))}
    init = (args.mode, args.model, args.script)
    with concurrent.futures.ProcessPoolExecutor(max_workers=max(1, args.concurrency), initializer=init_worker, initargs=init) as pool:
        pending = {pool.submit(score_batch, args.mode, b): i for i, b in enumerate(batches)}
        deadlines = {f: time.time() + args.timeout for f in pending}
        while pending:
            done, _ = concurrent.futures.wait(list(pending), timeout=1, return_when=concurrent.futures.FIRST_COMPLETED)
            now = time.time()
            for f in list(pending):
                i = pending[f]
                error = None
                if f in done:
                    try:
                        results[i] = f.result()
                        del pending[f]
                        continue
                    except concurrent.futures.process.BrokenProcessPool as e:
                        raise SystemExit(f"[kiln-batch] a scoring process died ({e}); see the log above") from e
                    except Exception as e:
                        error = "".join(traceback.format_exception_only(type(e), e)).strip()
                elif now > deadlines[f]:
                    f.cancel()
                    error = f"took longer than {args.timeout:g} s"
                else:
                    continue
                del pending[f]
                attempts[i] += 1
                if attempts[i] <= args.max_retries:
                    print(f"[kiln-batch] mini-batch {i} failed ({error}); retry {attempts[i]} of {args.max_retries}", flush=True)
                    nf = pool.submit(score_batch, args.mode, batches[i])
                    pending[nf] = i
                    deadlines[nf] = time.time() + args.timeout
                else:
                    failed_files += len(batches[i])
                    print(f"[kiln-batch] mini-batch {i} failed ({error}); its {len(batches[i])} files count as failed", flush=True)
                    if 0 <= args.error_threshold < failed_files:
                        raise SystemExit(
                            f"[kiln-batch] {failed_files} files failed, more than error_threshold {args.error_threshold}"
                        )
    rows = 0
    if args.output_action == "append_row":
        with open(os.path.join(args.output, args.output_file_name), "a") as out:
            for i in sorted(results):
                for line in results[i]:
                    out.write(line + "\n")
                    rows += 1
    print(f"[kiln-batch] done in {time.time() - started:.1f} s: {len(files) - failed_files} files scored, "
          f"{failed_files} failed, {rows} rows written", flush=True)


if __name__ == "__main__":
    main()
