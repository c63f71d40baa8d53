"""Kiln's inference worker: one process per instance of an online deployment.

Kiln starts it (through `kiln launch`, in the deployment's environment, in a working folder
holding the deployment's code) and talks to it over HTTP on 127.0.0.1:
  GET /        health (liveness and readiness): 200 once the model is loaded
  POST /score  one scoring request; the answer is passed back to the caller as it is

Two modes:
  mlflow  an MLflow model's python_function flavor, answered by MLflow's own scoring code
          (mlflow.pyfunc.scoring_server.invocations), so requests and answers are exactly
          those of `mlflow models serve`;
  script  an Azure ML scoring script: init() once, then run(raw_data) with the request body as
          a string; what run() returns is sent back as JSON. AZUREML_MODEL_DIR is
          <working folder>/azureml-models/<model name>/<version>, holding the model's file or
          folder under its own name, as the original service lays it out.

The port is written to --port-file once the model is loaded: that is when the instance is ready.
"""

import argparse
import http.server
import importlib.util
import json
import os
import sys
import traceback


def model_dir(model, name, version):
    """AZUREML_MODEL_DIR: a folder that holds the model under its own name."""
    root = os.path.join(os.getcwd(), "azureml-models", name or "model", version or "1")
    os.makedirs(root, exist_ok=True)
    link = os.path.join(root, os.path.basename(model.rstrip("/")))
    if not os.path.lexists(link):
        os.symlink(model, link)
    return root


def mlflow_scorer(model_path):
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server

    model = mlflow.pyfunc.load_model(model_path)
    schema = model.metadata.get_input_schema()
    os.environ["_MLFLOW_IS_IN_SERVING_ENVIRONMENT"] = "true"

    def score(body, content_type):
        try:
            data = body if (content_type or "").startswith("application/vnd.apache.parquet") else body.decode("utf-8")
            r = scoring_server.invocations(data, content_type or "application/json", model, schema)
            text = r.response if isinstance(r.response, (bytes, bytearray)) else str(r.response).encode("utf-8")
            return r.status, r.mimetype, text
        except MlflowException as e:
            return e.get_http_status_code(), "application/json", e.serialize_as_json().encode("utf-8")
        except UnicodeDecodeError as e:
            return 400, "application/json", json.dumps({"error_code": "BAD_REQUEST", "message": f"the body is not UTF-8: {e}"}).encode()

    return score


def script_scorer(script):
    path = os.path.abspath(script)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"the scoring script {script} is not in the code folder")
    sys.path.insert(0, os.path.dirname(path))
    spec = importlib.util.spec_from_file_location("score", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for fn in ("init", "run"):
        if not callable(getattr(module, fn, None)):
            raise AttributeError(f"the scoring script {script} has no {fn}() function")
    module.init()

    def score(body, content_type):
        try:
            result = module.run(body.decode("utf-8", errors="replace"))
        except Exception as e:
            traceback.print_exc()
            message = f"run() raised {type(e).__name__}: {e}"
            return 500, "application/json", json.dumps({"error_code": "SCORING_SCRIPT_ERROR", "message": message}).encode()
        if isinstance(result, (bytes, bytearray)):
            return 200, "application/octet-stream", bytes(result)
        return 200, "application/json", json.dumps(result, default=str).encode("utf-8")

    return score


def serve(score, port_file):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; with Nagle's algorithm the second waits for
        # the client's delayed ACK (40 ms) on a kept-alive connection.
        disable_nagle_algorithm = True

        def answer(self, status, content_type, body):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self.answer(200, "text/plain", b"Healthy")

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            try:
                status, content_type, out = score(body, self.headers.get("Content-Type"))
            except Exception as e:
                traceback.print_exc()
                status, content_type = 500, "application/json"
                out = json.dumps({"error_code": "WORKER_ERROR", "message": f"{type(e).__name__}: {e}"}).encode()
            self.answer(status, content_type, out)

        def log_message(self, format, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(port))
    os.replace(tmp, port_file)
    print(f"[kiln-worker] ready on 127.0.0.1:{port}", flush=True)
    server.serve_forever()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["mlflow", "script"], required=True)
    ap.add_argument("--model", default="")
    ap.add_argument("--model-name", default="")
    ap.add_argument("--model-version", default="")
    ap.add_argument("--script", default="")
    ap.add_argument("--port-file", required=True)
    args = ap.parse_args()
    os.environ.setdefault("AML_APP_ROOT", os.getcwd())
    if args.model:
        os.environ["AZUREML_MODEL_DIR"] = model_dir(args.model, args.model_name, args.model_version)
    if args.script:
        os.environ["AZUREML_ENTRY_SCRIPT"] = args.script
    print(f"[kiln-worker] loading ({args.mode}) with {sys.executable}", flush=True)
    score = mlflow_scorer(args.model) if args.mode == "mlflow" else script_scorer(args.script)
    serve(score, args.port_file)


if __name__ == "__main__":
    main()
