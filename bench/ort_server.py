#!/usr/bin/env python3
"""The model benchmark's onnxruntime server: the same model.onnx behind a minimal Python HTTP
server (http.server, one thread per connection), answering the Open Inference Protocol's
infer request as fnhost does: `POST /v2/models/NAME/infer` with FP32 `inputs` → label and
probabilities. `GET /v2/health/ready` for readiness. Loopback only.

    python ort_server.py --model DIR/model.onnx --name NAME --port PORT
"""

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import onnxruntime as ort

DATATYPES = {np.dtype("float32"): "FP32", np.dtype("float64"): "FP64", np.dtype("int64"): "INT64"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    output_names = [o.name for o in session.get_outputs()]
    infer_path = f"/v2/models/{args.name}/infer"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/v2/health/ready":
                self.reply(200, {"ready": True})
            else:
                self.reply(404, {"error": "not found"})

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            if self.path != infer_path:
                self.reply(404, {"error": "not found"})
                return
            request = json.loads(body)
            tensor = request["inputs"][0]
            x = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
            results = session.run(output_names, {input_name: x})
            outputs = [
                {"name": name, "datatype": DATATYPES[r.dtype], "shape": list(r.shape),
                 "data": r.ravel().tolist()}
                for name, r in zip(output_names, results)
            ]
            self.reply(200, {"model_name": args.name, "outputs": outputs})

    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
