"""A test component written against Spin's Python SDK as its documentation shows, built from
this source by the end-to-end tests (tests/tests/python.rs):

- /echo: method, URI, the x-test header and the body, as JSON
- /var?name=N: the component variable N (404 naming Spin's error when it fails)
- /kv/KEY: GET / PUT (body) / DELETE in the default key-value store; /kv lists the keys
- /denied/...: the same routes, served by a component the manifest grants no store
- /mqtt: opens an MQTT connection (an interface fnhost does not implement)
"""
import json

from componentize_py_types import Err
from spin_sdk import http, key_value, mqtt, variables
from spin_sdk.http import Request, Response


def reply(status, value):
    return Response(status, {"content-type": "application/json"}, json.dumps(value).encode())


def error_name(e):
    return type(e.value).__name__


class HttpHandler(http.Handler):
    async def handle_request(self, request: Request) -> Response:
        path, _, query = request.uri.partition("?")
        # The manifest routes /denied/... to a second component (no key-value grant).
        path = path.removeprefix("/denied")
        if path == "/echo":
            return reply(200, {
                "method": request.method,
                "uri": request.uri,
                "x-test": request.headers.get("x-test"),
                "body": (request.body or b"").decode(),
            })
        if path == "/var":
            name = query.removeprefix("name=")
            try:
                return reply(200, {"value": await variables.get(name)})
            except Err as e:
                return reply(404, {"error": error_name(e)})
        if path == "/kv" or path.startswith("/kv/"):
            try:
                store = await key_value.open_default()
            except Err as e:
                return reply(403, {"error": error_name(e)})
            with store:
                key = path.removeprefix("/kv").removeprefix("/")
                if request.method == "PUT":
                    await store.set(key, request.body or b"")
                    return reply(200, {"set": key})
                if request.method == "DELETE":
                    await store.delete(key)
                    return reply(200, {"deleted": key})
                if not key:
                    keys_stream, done = await store.get_keys()
                    keys = []
                    with keys_stream:
                        while not keys_stream.writer_dropped:
                            keys += await keys_stream.read(100)
                    await done.read()
                    return reply(200, {"keys": sorted(keys)})
                value = await store.get(key)
                if value is None:
                    return reply(404, {"missing": key})
                return reply(200, {"value": value.decode()})
        if path == "/mqtt":
            await mqtt.open("mqtt://127.0.0.1:1883", "user", "password", 30)
            return reply(200, {"unexpected": "open succeeded"})
        return reply(404, {"no route": path})
