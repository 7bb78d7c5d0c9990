"""A small OpenAI-compatible HTTP server on loopback, for driving the real ``openai`` client.

It answers ``/v1/chat/completions``, ``/v1/responses`` and ``/v1/embeddings``, plain or
streamed as server-sent events, with deterministic replies and token usage. A model name
chooses a failure: ``fail-400`` answers 400, ``fail-500`` answers 500 (the client retries
those, so tests pass ``max_retries=0``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

REPLY = "Hello from the fake model."
USAGE = {
    "prompt_tokens": 11,
    "completion_tokens": 6,
    "total_tokens": 17,
    "prompt_tokens_details": {"cached_tokens": 8},  # read from OpenAI's prompt cache
}


def _chat(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": REPLY},
            }
        ],
        "usage": USAGE,
    }


def _chat_chunks(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    base = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": body["model"],
    }
    words = REPLY.split(" ")
    for i, word in enumerate(words):
        text = word if i == 0 else " " + word
        yield {**base, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    if (body.get("stream_options") or {}).get("include_usage"):
        yield {**base, "choices": [], "usage": USAGE}


def _response(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "status": "completed",
        "model": body["model"],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "output": [
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": REPLY, "annotations": []}],
            }
        ],
        "usage": {
            "input_tokens": 11,
            "output_tokens": 6,
            "total_tokens": 17,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }


def _response_events(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    final = _response(body)
    started = {**final, "status": "in_progress", "output": [], "usage": None}
    yield {"type": "response.created", "sequence_number": 0, "response": started}
    for i, word in enumerate(REPLY.split(" ")):
        yield {
            "type": "response.output_text.delta",
            "sequence_number": i + 1,
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "delta": word if i == 0 else " " + word,
            "logprobs": [],
        }
    yield {"type": "response.completed", "sequence_number": 99, "response": final}


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

    def _sse(self, events: Iterator[dict[str, Any]], named: bool) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()
        for event in events:
            head = f"event: {event['type']}\n" if named else ""
            self.wfile.write(f"{head}data: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()
        if not named:
            self.wfile.write(b"data: [DONE]\n\n")
        self.close_connection = True

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        self.server.requests.append((self.path, body))  # type: ignore[attr-defined]
        model = str(body.get("model", ""))
        if model == "fail-400":
            self._json(400, {"error": {"message": "bad request", "type": "invalid_request_error"}})
            return
        if model == "fail-500":
            self._json(500, {"error": {"message": "server exploded", "type": "server_error"}})
            return
        if self.path.endswith("/chat/completions"):
            if body.get("stream"):
                self._sse(_chat_chunks(body), named=False)
            else:
                self._json(200, _chat(body))
        elif self.path.endswith("/responses"):
            if body.get("stream"):
                self._sse(_response_events(body), named=True)
            else:
                self._json(200, _response(body))
        elif self.path.endswith("/embeddings"):
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            self._json(
                200,
                {
                    "object": "list",
                    "model": body["model"],
                    "data": [
                        {"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}
                        for i in range(len(inputs))
                    ],
                    "usage": {"prompt_tokens": 4, "total_tokens": 4},
                },
            )
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})


class FakeOpenAIServer:
    """Start with ``with FakeOpenAIServer() as server:``; ``server.base_url`` for clients."""

    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.requests = []  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def requests(self) -> list[tuple[str, dict[str, Any]]]:
        return self.httpd.requests  # type: ignore[attr-defined,no-any-return]

    def __enter__(self) -> FakeOpenAIServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
