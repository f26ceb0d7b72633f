"""Errors aiohttp's HTTP parser answers before any handler or middleware runs (an unknown
method, a NUL in a header, a malformed request line, headers past the size limits) get
the service's JSON error shape too, not aiohttp's plain text.

aiohttp builds those answers in `RequestHandler.handle_error`, on a protocol object its
`Server` makes per connection; the runner below makes a server whose connections answer
with JSON. The message is fixed per kind of fault: the parser's own message quotes the
offending bytes, which may be a header carrying a token."""

from __future__ import annotations

import logging
from http import HTTPStatus

import orjson
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, BadStatusLine, InvalidHeader, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from dispatch.entrypoints import request_ids

log = logging.getLogger(__name__)

# (kind of parser error, status, error code, message), first match wins.
_PARSER_FAULTS: tuple[tuple[type[BaseException], int, str, str], ...] = (
    (LineTooLong, 431, "headers_too_large", "a request line or header is above the size limit"),
    (BadHttpMethod, 400, "bad_request", "the request method is not valid"),
    (BadStatusLine, 400, "bad_request", "the request line is malformed"),
    (InvalidHeader, 400, "bad_request", "a request header is malformed"),
)


def parser_error(status: int, exc: BaseException | None) -> tuple[int, str, str]:
    """(status, code, message) for what aiohttp answers `status` to, caused by `exc`."""
    for kind, fault_status, code, message in _PARSER_FAULTS:
        if isinstance(exc, kind):
            return fault_status, code, message
    if status == 500:
        return 500, "internal", "internal error"
    if status == 504:
        return 503, "backend_unavailable", "the request ran past its deadline"
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "error"
    return status, "bad_request" if status == 400 else "http_error", phrase.lower()


class JsonErrorRequestHandler(RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # a response is half sent: nothing to add
            raise ConnectionError("response already started; cannot send an error")
        status, code, text = parser_error(status, exc)
        # Never the id the client sent: its headers are what failed to parse.
        request_id = request_ids.new_id()
        token = request_ids.current.set(request_id)
        try:
            kind = type(exc).__name__ if exc else status
            if status >= 500:
                log.error("error handling a request: %s", kind)
            else:  # a client's malformed bytes: noted, never quoted
                log.info("refused a malformed request: %s", kind)
        finally:
            request_ids.current.reset(token)
        body = {"error": code, "message": text, "request_id": request_id}
        resp = web.Response(body=orjson.dumps(body), status=status, content_type="application/json")
        resp.headers[request_ids.HEADER] = request_id
        resp.force_close()  # after a parser error the connection's framing is unknown
        return resp


class JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return JsonErrorRequestHandler(self, loop=self._loop, **self._kwargs)


class JsonErrorAppRunner(web.AppRunner):
    """An AppRunner whose connections answer parser errors as JSON."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # The app builds a plain Server (Application._make_handler); the subclass adds no
        # state, only the protocol it makes per connection.
        server.__class__ = JsonErrorServer
        return server
