"""The control for the benchmark: the same contract and the same Machin code as the component,
served natively by Flask (as the original picrunch service was).

usage: python flask_app.py PORT   (serves /api/v0/pi on 127.0.0.1:PORT)
"""
import sys

from flask import Flask, Response, request

from contract import DEFAULT_MAX_NDIGITS, respond

app = Flask(__name__)


@app.route("/api/v0/pi", methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def pi():
    query = request.query_string.decode("latin-1") if request.query_string else None
    status, headers, body = respond(
        request.method, query, request.headers.get("if-none-match"), DEFAULT_MAX_NDIGITS
    )
    return Response(body, status=status, headers=headers)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True)
