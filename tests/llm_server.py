"""A deterministic chat-completions server on loopback, for the LLM synthesis tests.

It answers ``POST /v1/chat/completions`` as an OpenAI-compatible server does. The chunk a
request is about is named by a ``chunk-N`` marker in the prompt; a chunk's text can ask for
trouble: ``[429]`` / ``[500]`` (that status on its first request, with ``Retry-After: 0``),
``[malformed]`` (a body that is not JSON, on its first request), ``[always-malformed]``,
``[slow]`` (answers after ``slow_seconds``). ``hold_at`` = n makes the n-th request wait until
``release()`` (so a test can kill the client while it is in flight). Every request is
recorded: the chunk, the status sent, and whether the answer was written completely.
"""

from __future__ import annotations

import json
import re
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MARKER = re.compile(r"chunk-\d+")


@dataclass
class Request:
    chunk: str
    status: int
    answered: bool = False  # the whole response was written


@dataclass
class ChatServer:
    slow_seconds: float = 3.0
    hold_at: int | None = None
    requests: list[Request] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    held: threading.Event = field(default_factory=threading.Event)
    _release: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> str:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def stop(self) -> None:
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def release(self) -> None:
        self._release.set()

    def answered(self) -> dict[str, int]:
        """Complete answers per chunk."""
        counts: dict[str, int] = {}
        for r in self.requests:
            if r.answered and r.status == 200:
                counts[r.chunk] = counts.get(r.chunk, 0) + 1
        return counts

    def _first(self, chunk: str) -> bool:
        return sum(r.chunk == chunk for r in self.requests) == 0

    def respond(self, prompt: str) -> tuple[int, bytes, Request]:
        found = MARKER.search(prompt)
        chunk = found.group(0) if found else "?"
        with self._lock:
            first = self._first(chunk)
            status = 200
            if first and "[429]" in prompt:
                status = 429
            elif first and "[500]" in prompt:
                status = 500
            request = Request(chunk, status)
            self.requests.append(request)
            number = len(self.requests)
        if self.hold_at == number:
            self.held.set()
            self._release.wait(timeout=120)
        if "[slow]" in prompt:
            time.sleep(self.slow_seconds)
        if status != 200:
            return status, json.dumps({"error": {"message": "try again"}}).encode(), request
        if "[always-malformed]" in prompt or (first and "[malformed]" in prompt):
            return 200, b'{"id": "x", "choices": [{"message": ', request
        count = int(re.search(r"write (\d+) question", prompt).group(1))
        questions = [f"what does {chunk} report about finding {i}" for i in range(count)]
        body = {
            "id": f"cmpl-{number}",
            "object": "chat.completion",
            "created": 0,
            "model": "test-llm",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {
                        "role": "assistant",
                        "content": "\n".join(f"{i + 1}. {q}" for i, q in enumerate(questions)),
                    },
                }
            ],
            "usage": {
                "prompt_tokens": len(prompt.split()),
                "completion_tokens": 7 * count,
                "total_tokens": len(prompt.split()) + 7 * count,
            },
        }
        return 200, json.dumps(body).encode(), request


def _handler(server: ChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            payload = json.loads(self.rfile.read(length))
            prompt = payload["messages"][-1]["content"]
            with server._lock:
                server.in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server.in_flight)
            try:
                status, body, request = server.respond(prompt)
                if _peer_closed(self.connection):
                    return  # the client went away (killed) while it waited
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                request.answered = True
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away (killed) before the answer was written
            finally:
                with server._lock:
                    server.in_flight -= 1

    return Handler


def _peer_closed(conn: socket.socket) -> bool:
    readable, _, _ = select.select([conn], [], [], 0)
    if not readable:
        return False
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True
