"""A small server speaking Anthropic's Messages API on loopback, for the real ``anthropic`` client.

``POST /v1/messages`` answers a Message, or with ``"stream": true`` the same Message as the
server-sent events the API sends (``message_start``, ``content_block_*``, ``message_delta``,
``message_stop``, with ``ping``s in between). A request with ``tools`` gets a ``tool_use``
block after the text. A model name chooses a failure: ``fail-400`` answers 400,
``fail-midstream`` sends an ``error`` event after the first text delta.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

REPLY = "Hello from the fake Claude."
TOOL_INPUT = {"city": "Paris", "unit": "celsius"}
USAGE = {
    "input_tokens": 21,
    "output_tokens": 9,
    "cache_read_input_tokens": 100,
    "cache_creation_input_tokens": 7,
}


def message(body: dict[str, Any]) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": REPLY}]
    if body.get("tools"):
        name = body["tools"][0]["name"]
        content.append({"type": "tool_use", "id": "toolu_1", "name": name, "input": TOOL_INPUT})
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": "tool_use" if body.get("tools") else "end_turn",
        "stop_sequence": None,
        "usage": USAGE,
    }


def _events(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    final = message(body)
    start = {**final, "content": [], "stop_reason": None, "usage": {**USAGE, "output_tokens": 1}}
    yield {"type": "message_start", "message": start}
    yield {"type": "ping"}
    for index, block in enumerate(final["content"]):
        if block["type"] == "text":
            yield {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "text", "text": ""},
            }
            for i, word in enumerate(REPLY.split(" ")):
                delta = {"type": "text_delta", "text": word if i == 0 else " " + word}
                yield {"type": "content_block_delta", "index": index, "delta": delta}
                if body["model"] == "fail-midstream":
                    yield {
                        "type": "error",
                        "error": {"type": "overloaded_error", "message": "Overloaded"},
                    }
                    return
        else:
            yield {
                "type": "content_block_start",
                "index": index,
                "content_block": {**block, "input": {}},
            }
            text = json.dumps(block["input"])
            for part in (text[:10], text[10:]):
                delta = {"type": "input_json_delta", "partial_json": part}
                yield {"type": "content_block_delta", "index": index, "delta": delta}
        yield {"type": "content_block_stop", "index": index}
    yield {
        "type": "message_delta",
        "delta": {"stop_reason": final["stop_reason"], "stop_sequence": None},
        "usage": {"output_tokens": USAGE["output_tokens"]},
    }
    yield {"type": "message_stop"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, events: Iterator[dict[str, Any]]) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()
        try:
            for event in events:
                self.wfile.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client closed the stream early
        self.close_connection = True

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        self.server.requests.append((self.path, body))  # type: ignore[attr-defined]
        if self.path.split("?")[0] != "/v1/messages":
            self._json(404, {"type": "error", "error": {"type": "not_found_error"}})
        elif body.get("model") == "fail-400":
            error = {"type": "invalid_request_error", "message": "max_tokens: too large"}
            self._json(400, {"type": "error", "error": error})
        elif body.get("stream"):
            self._sse(_events(body))
        else:
            self._json(200, message(body))


class FakeAnthropicServer:
    """Start with ``with FakeAnthropicServer() as server:``; ``server.base_url`` for clients."""

    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.requests = []  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> list[tuple[str, dict[str, Any]]]:
        return self.httpd.requests  # type: ignore[attr-defined,no-any-return]

    def __enter__(self) -> FakeAnthropicServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
