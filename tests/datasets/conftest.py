"""A local HTTP file server for the download tests (127.0.0.1 only), and a cache folder per test.

``file_server`` serves ``server.files`` (URL path → bytes) with ``Range: bytes=N-`` support and
counts what it serves; ``cut_after[path] = k`` ends the next answer for ``path`` after k bytes of
its body (a dropped connection), ``ignore_range`` answers a range request with the whole file,
``gate`` (an Event) holds an answer after its first chunk until it is set (to keep a download
going while another process starts).
"""
from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from polydl.datasets import download

CHUNK = 1024


class FileServer:
    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []   # (path, Range header)
        self.sent: dict[str, int] = {}                      # path -> body bytes sent
        self.cut_after: dict[str, int] = {}
        self.ignore_range = False
        self.gate: threading.Event | None = None
        self.started = threading.Event()                    # set when a body starts going out
        self.lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def stop(self):
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                rng = self.headers.get("Range")
                with server.lock:
                    server.requests.append((path, rng))
                data = server.files.get(path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                m = re.fullmatch(r"bytes=(\d+)-", rng or "")
                if m and not server.ignore_range:
                    start = int(m.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                with server.lock:
                    limit = server.cut_after.pop(path, None)
                if limit is not None:
                    body = body[:limit]
                server.started.set()
                for i in range(0, len(body), CHUNK):
                    self.wfile.write(body[i:i + CHUNK])
                    self.wfile.flush()
                    with server.lock:
                        server.sent[path] = server.sent.get(path, 0) + len(body[i:i + CHUNK])
                    if server.gate is not None:
                        server.gate.wait(30)
                if limit is not None:
                    self.close_connection = True

        return Handler


@pytest.fixture
def file_server():
    server = FileServer()
    yield server
    server.stop()


@pytest.fixture
def closed_url():
    """The URL of a port on 127.0.0.1 that nothing listens on (a server started, then stopped)."""
    server = FileServer()
    server.stop()
    return server.url


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """``POLYDL_DATA_DIR`` set to a fresh folder, no mirror in the environment."""
    root = tmp_path / "cache"
    monkeypatch.setenv(download.DATA_DIR_ENV, str(root))
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)
    return root
