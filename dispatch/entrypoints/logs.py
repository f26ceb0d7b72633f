"""Service logs: one JSON object a line (or plain text), each line with the id of the
request it was written for, and never a token or a secret.

`configure(settings)` installs one handler on the root logger: its filters add the
request id (dispatch.entrypoints.request_ids) and blank out anything shaped like a bearer
token, a JWT or the service's own secret, whichever module wrote the line and whatever
it quoted (a header, a URL with ?access_token=, an exception's message)."""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any, TextIO

import orjson

from dispatch.entrypoints import request_ids
from dispatch.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
REDACTED = "[redacted]"
# A JWT (three base64url parts, the first two JSON objects: "eyJ"), a bearer credential,
# and the token query parameter the WebSocket and event streams take.
_SECRETS = re.compile(
    r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=-]+"
    r"|(?i:access_token)=[^&\s'\"]+"
)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return _SECRETS.sub(REDACTED, text)


class RequestContext(logging.Filter):
    """Adds `request_id` ("-" outside a request) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_ids.current.get() or "-"
        return True


class Redact(logging.Filter):
    """Renders the message (and any traceback) once, with secrets blanked out."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self._secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), self._secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self._secrets)
        record.exc_info = None  # rendered (and redacted) above: never again from the raw
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self._secrets)
        return True


class JsonLines(logging.Formatter):
    """{"ts","level","logger","message","request_id"?,"exc"?} a line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "-")
        if request_id != "-":
            line["request_id"] = request_id
        if record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return orjson.dumps(line).decode()


def handler(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    out = logging.StreamHandler(stream or sys.stderr)
    out.addFilter(RequestContext())
    out.addFilter(Redact((settings.jwt_secret,)))
    if settings.log_format == "json":
        out.setFormatter(JsonLines())
    else:
        out.setFormatter(logging.Formatter(TEXT_FORMAT))
    return out


def configure(settings: Settings, stream: TextIO | None = None) -> None:
    """The root logger writes through one handler, at settings.log_level."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler(settings, stream))
    root.setLevel(settings.log_level)
