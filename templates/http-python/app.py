"""{{name}}: a WebAssembly HTTP component in Python (Spin's Python SDK, `wasi:http`), written
by `fnhost new http-python`. componentize-py compiles it into app.wasm (the build command in
spin.toml); `fnhost up` serves it on /{{name}}/...

- GET /{{name}}/ANY/PATH?who=NAME -> 200 {"component": "{{name}}", "path": "/{{name}}/ANY/PATH",
  "who": NAME, "greeting": "hello, NAME"}
- `who` missing, empty or given twice -> 400 {"error": "..."} naming the parameter
"""
import json
from urllib.parse import parse_qs

from spin_sdk import http
from spin_sdk.http import Request, Response

COMPONENT = "{{name}}"
PARAM = "who"


def reply(status, value):
    body = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return Response(status, {"content-type": "application/json"}, body.encode())


def parse_who(query):
    """(who, None) or (None, the error message for the client)."""
    values = parse_qs(query, keep_blank_values=True).get(PARAM, [])
    if not values:
        return None, f"missing query parameter `{PARAM}`, e.g. ?{PARAM}=Ada"
    if len(values) > 1:
        return None, f"query parameter `{PARAM}` must be given once, got {len(values)}"
    if not values[0]:
        return None, f"query parameter `{PARAM}` must not be empty"
    return values[0], None


class HttpHandler(http.Handler):
    async def handle_request(self, request: Request) -> Response:
        path, _, query = request.uri.partition("?")
        who, error = parse_who(query)
        if error is not None:
            return reply(400, {"error": error})
        return reply(200, {
            "component": COMPONENT,
            "path": path,
            PARAM: who,
            "greeting": f"hello, {who}",
        })
