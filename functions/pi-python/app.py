"""pi v0: the talk's Python service as a Spin component (Spin's Python SDK). The maximum
ndigits is the component variable `max_ndigits` (spin.toml: `[component.NAME.variables]`),
1,000,000 when the component declares none.
"""
from componentize_py_types import Err
from spin_sdk import http, variables
from spin_sdk.http import Request, Response
from spin_sdk.wit.imports.spin_variables_variables_3_0_0 import Error_Undefined

from contract import max_ndigits_setting, respond


async def max_ndigits_variable():
    try:
        return await variables.get("max_ndigits")
    except Err as e:
        if isinstance(e.value, Error_Undefined):
            return None
        raise


class HttpHandler(http.Handler):
    async def handle_request(self, request: Request) -> Response:
        max_ndigits, error = max_ndigits_setting(await max_ndigits_variable())
        if error is not None:
            return Response(*error)
        _, _, query = request.uri.partition("?")
        if_none_match = next(
            (v for k, v in request.headers.items() if k.lower() == "if-none-match"), None
        )
        status, headers, body = respond(
            request.method, query if "?" in request.uri else None, if_none_match, max_ndigits
        )
        return Response(status, headers, body)
