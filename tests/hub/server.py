#!/usr/bin/env python3
"""A local stand-in for the Hugging Face hub, with fault injection, for the downloader tests.

Usage:
    python3 tests/hub/server.py [--log FILE] [--big-mb N] [--token TOKEN]
                                [--cdn-host HOST] [--no-stdin-watch]

Python 3.11+, standard library only.

Two HTTP/1.1 servers (keep-alive, exact Content-Length):
  * "main" on 127.0.0.1:<any free port>: the hub API and the /resolve/ endpoint;
  * "cdn" on 127.0.0.2:<any free port> (the whole 127/8 is loopback on Linux; where 127.0.0.2 cannot be
    bound, e.g. macOS without an lo0 alias, it falls back to 127.0.0.1 on another port, which is still
    another origin). LFS files are 302-redirected there, as the real hub redirects them to its CDN.

When both listen, exactly one line goes to stdout, `http://127.0.0.1:PORT`, and nothing else ever does.
The server runs until it is killed or until its stdin reaches end of file, so a test that spawns it
must give it a pipe as stdin and keep the write end open while it needs the server (Rust: `Stdio::piped()`,
keep the `ChildStdin`; Kotlin's ProcessBuilder pipes by default; Swift: a `Pipe()` as `standardInput`).
With stdin on /dev/null it exits at once; `--no-stdin-watch` turns that off for manual use.

Every repo `smolvlm-test/<x>` serves the files of tests/fixtures/models/tiny-smolvlm2/ at a fixed fake
commit (sha1 of the repo id). `*.safetensors`, `*.gguf`, `*.bin` are LFS files: their ETag is their
sha256 and /resolve/ redirects them to the CDN. Other files are served by the main host; their ETag is
their git blob sha1. Faults, by repo name:
  tiny          normal
  gated         main host: no Authorization -> 401 (X-Error-Code: GatedRepo); another token -> 403
                (X-Error-Code: GatedRepo); `Bearer <--token>` -> as tiny
  tiny-drop     CDN: a GET without Range sends the full Content-Length but only half of the bytes, then
                closes the connection; a GET with Range is served normally
  tiny-corrupt  CDN: the content has one byte flipped in the middle (headers, sizes, hashes unchanged)
  tiny-stall    CDN: a GET sends the headers and 64 KiB (half the body if it is smaller), then nothing
                until the client goes away or 120 s pass
  tiny-norange  Range is ignored everywhere (200, full body, no Accept-Ranges), and the CDN drops
                mid-body like tiny-drop on a GET without Range
  flaky         the first GET of each distinct path (query string not counted), main and CDN alike,
                answers 503; later ones are normal
  forbidden     main host: everything answers 403
  big           only with --big-mb N: big.bin (LFS, N MiB of deterministic pseudo-random bytes) and
                config.json (`{}`)
Unknown repo: 404 X-Error-Code: RepoNotFound; unknown revision: 404 RevisionNotFound (revisions: `main`
and the repo's commit); unknown file: 404 EntryNotFound.

Endpoints (main host, path segments percent-decoded, query strings ignored):
  GET|HEAD /api/models/{org}/{name}[/revision/{rev}]   repo info with siblings (like ?blobs=true)
  GET|HEAD /api/models/{org}/{name}/tree/{rev}[/{dir}] file listing (what huggingface_hub's
                                                       snapshot_download uses)
  GET|HEAD /{org}/{name}/resolve/{rev}/{file}
CDN host:
  GET|HEAD /lfs/{org}/{name}/{sha256}                  never checks Authorization (only logs it)
Range: `bytes=N-`, `bytes=N-M` (and `bytes=-K`) -> 206 with Content-Range; start >= size -> 416.

--log FILE appends one JSON object per finished request (dropped and stalled ones too, when they end):
  {"host": "main"|"cdn", "method": ..., "path": <request target as sent, query included>,
   "range": <Range header or null>, "authorization": <Authorization header or null>,
   "status": ..., "bytes_sent": <body bytes actually written>}
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import os
import random
import select
import signal
import socket
import socketserver
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from dataclasses import dataclass, field

ORG = "smolvlm-test"
LFS_SUFFIXES = (".safetensors", ".gguf", ".bin")
FIXTURE_DIR = os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "models", "tiny-smolvlm2")
)
STALL_BYTES = 64 * 1024
STALL_SECONDS = 120.0
SEND_CHUNK = 4 * 1024 * 1024
BIG_CHUNK = 8 * 1024 * 1024

DISCONNECT_ERRORS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


def eprint(*args: object) -> None:
    print("hub-server:", *args, file=sys.stderr, flush=True)


def git_blob_sha1(data: bytes) -> str:
    h = hashlib.sha1(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


# ----------------------------------------------------------------------------------------------------
# Content


class Content:
    """Bytes to serve: in memory, or in a file descriptor (the big file)."""

    size: int

    def send(self, handler: "HubHandler", start: int, count: int) -> None:
        raise NotImplementedError


class MemoryContent(Content):
    def __init__(self, data: bytes):
        self.data = data
        self.size = len(data)

    def send(self, handler: "HubHandler", start: int, count: int) -> None:
        view = memoryview(self.data)
        sock = handler.connection
        pos, end = start, start + count
        while pos < end:
            n = sock.send(view[pos : min(end, pos + SEND_CHUNK)])  # counts what really went out
            pos += n
            handler.bytes_sent += n


class FdContent(Content):
    """A file already unlinked from disk; os.sendfile with explicit offsets is safe across threads."""

    def __init__(self, fd: int, size: int):
        self.fd = fd
        self.size = size

    def send(self, handler: "HubHandler", start: int, count: int) -> None:
        sock = handler.connection
        out = sock.fileno()
        pos, end = start, start + count
        use_sendfile = hasattr(os, "sendfile")
        while pos < end:
            n = min(BIG_CHUNK, end - pos)
            if use_sendfile:
                try:
                    sent = os.sendfile(out, self.fd, pos, n)
                except BlockingIOError:
                    select.select([], [sock], [], 30.0)
                    continue
                except OSError as e:
                    if isinstance(e, DISCONNECT_ERRORS):
                        raise
                    use_sendfile = False  # e.g. a platform where sendfile refuses this pair
                    continue
                if sent == 0:
                    raise BrokenPipeError("sendfile sent nothing")
            else:
                chunk = os.pread(self.fd, n, pos)
                sock.sendall(chunk)
                sent = len(chunk)
            pos += sent
            handler.bytes_sent += sent


@dataclass
class RepoFile:
    name: str
    content: Content
    lfs: bool
    sha256: str | None  # LFS only
    blob_id: str  # git blob sha1 of the content, or of the LFS pointer for LFS files
    pointer_size: int | None  # LFS only
    corrupt: Content | None = None  # LFS only: the content with one byte flipped

    @property
    def size(self) -> int:
        return self.content.size

    def etag(self) -> str:
        return self.sha256 if self.lfs else self.blob_id


@dataclass
class Repo:
    id: str
    fault: str
    files: dict[str, RepoFile]
    commit: str = field(init=False)
    by_sha: dict[str, RepoFile] = field(init=False)

    def __post_init__(self) -> None:
        self.commit = hashlib.sha1(self.id.encode()).hexdigest()
        self.by_sha = {f.sha256: f for f in self.files.values() if f.lfs}


def make_file(name: str, content: Content, sha256: str | None = None, data: bytes | None = None) -> RepoFile:
    lfs = name.endswith(LFS_SUFFIXES)
    if lfs:
        if sha256 is None:
            assert data is not None
            sha256 = hashlib.sha256(data).hexdigest()
        pointer = lfs_pointer(sha256, content.size)
        corrupt = None
        if data is not None and data:
            flipped = bytearray(data)
            flipped[len(flipped) // 2] ^= 0xFF
            corrupt = MemoryContent(bytes(flipped))
        return RepoFile(name, content, True, sha256, git_blob_sha1(pointer), len(pointer), corrupt)
    assert data is not None
    return RepoFile(name, content, False, None, git_blob_sha1(data), None)


def load_fixture_files() -> dict[str, RepoFile]:
    files: dict[str, RepoFile] = {}
    for name in sorted(os.listdir(FIXTURE_DIR)):
        path = os.path.join(FIXTURE_DIR, name)
        if not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        files[name] = make_file(name, MemoryContent(data), data=data)
    if not files:
        raise SystemExit(f"no fixture files in {FIXTURE_DIR}")
    return files


def make_big_file(mib: int) -> RepoFile:
    """N MiB of deterministic pseudo-random bytes in an unlinked temp file (nothing to clean up)."""
    total = mib * 1024 * 1024
    fd, path = tempfile.mkstemp(prefix="smolvlm-hub-big-", suffix=".bin")
    try:
        os.unlink(path)
    except OSError:
        pass
    h = hashlib.sha256()
    written, chunk_index = 0, 0
    t0 = time.monotonic()
    while written < total:
        n = min(BIG_CHUNK, total - written)
        chunk = random.Random(0x5EED0000 + chunk_index).randbytes(n)
        h.update(chunk)
        view = memoryview(chunk)
        while view:
            k = os.write(fd, view)
            view = view[k:]
        written += n
        chunk_index += 1
    eprint(f"big.bin: {mib} MiB generated in {time.monotonic() - t0:.1f}s")
    return make_file("big.bin", FdContent(fd, total), sha256=h.hexdigest())


def build_repos(big_mb: int | None) -> dict[str, Repo]:
    fixture = load_fixture_files()
    repos = {}
    for name in ("tiny", "gated", "tiny-drop", "tiny-corrupt", "tiny-stall", "tiny-norange", "flaky", "forbidden"):
        repo_id = f"{ORG}/{name}"
        repos[repo_id] = Repo(repo_id, name, dict(fixture))
    if big_mb:
        config = b"{}"
        files = {
            "big.bin": make_big_file(big_mb),
            "config.json": make_file("config.json", MemoryContent(config), data=config),
        }
        repos[f"{ORG}/big"] = Repo(f"{ORG}/big", "big", files)
    return repos


# ----------------------------------------------------------------------------------------------------
# Shared state


class State:
    def __init__(self, repos: dict[str, Repo], token: str, log_path: str | None):
        self.repos = repos
        self.token = token
        self.cdn_base = ""  # set once the CDN listens
        self.log_lock = threading.Lock()
        self.log_file = open(log_path, "a", encoding="utf-8") if log_path else None
        self.flaky_lock = threading.Lock()
        self.flaky_seen: set[tuple[str, str]] = set()

    def log(self, entry: dict) -> None:
        if self.log_file is None:
            return
        line = json.dumps(entry, separators=(", ", ": ")) + "\n"
        with self.log_lock:
            try:
                self.log_file.write(line)
                self.log_file.flush()
            except OSError as e:
                eprint(f"log write failed: {e}")

    def first_get(self, host: str, path: str) -> bool:
        """True the first time (host, path) is seen by a GET (the flaky repo's 503)."""
        key = (host, path)
        with self.flaky_lock:
            if key in self.flaky_seen:
                return False
            self.flaky_seen.add(key)
            return True


class HttpError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}


# ----------------------------------------------------------------------------------------------------
# HTTP


class HubServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, role: str, state: State):
        self.role = role
        self.state = state
        super().__init__(address, HubHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would call socket.getfqdn (a reverse DNS lookup that can hang).
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = host
        self.server_port = port

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, DISCONNECT_ERRORS) or isinstance(exc, OSError):
            return
        eprint(f"error on a {self.role} connection from {client_address}:")
        traceback.print_exc(file=sys.stderr)


class HubHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HubServer

    def version_string(self) -> str:
        return "smolvlm-test-hub/1"

    # -- plumbing ---------------------------------------------------------------------------------

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - silence per-request logging
        pass

    def send_response(self, code: int, message: str | None = None) -> None:
        self.status = code
        super().send_response(code, message)

    def do_GET(self) -> None:
        self.dispatch("GET")

    def do_HEAD(self) -> None:
        self.dispatch("HEAD")

    def dispatch(self, method: str) -> None:
        self.status = None
        self.bytes_sent = 0
        self.headers_sent = False
        state = self.server.state
        try:
            try:
                if self.server.role == "main":
                    self.route_main(method)
                else:
                    self.route_cdn(method)
            except HttpError as e:
                self.send_error_response(method, e)
        except DISCONNECT_ERRORS:
            self.close_connection = True
        except OSError:
            self.close_connection = True
        except Exception:
            self.close_connection = True
            eprint(f"internal error on {method} {self.path}:")
            traceback.print_exc(file=sys.stderr)
            if not self.headers_sent:
                try:
                    self.send_error_response(method, HttpError(500, "internal server error"))
                except Exception:
                    pass
        finally:
            state.log(
                {
                    "host": self.server.role,
                    "method": method,
                    "path": self.path,
                    "range": self.headers.get("Range"),
                    "authorization": self.headers.get("Authorization"),
                    "status": self.status,
                    "bytes_sent": self.bytes_sent,
                }
            )

    def finish_headers(self, headers: list[tuple[str, str]]) -> None:
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.headers_sent = True

    def send_body(self, method: str, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        self.finish_headers(headers + [("Content-Length", str(len(body)))])
        if method != "HEAD" and body:
            self.wfile.write(body)
            self.bytes_sent += len(body)

    def send_json(self, method: str, obj: object, headers: list[tuple[str, str]] | None = None) -> None:
        body = json.dumps(obj).encode()
        self.send_body(method, 200, body, [("Content-Type", "application/json; charset=utf-8")] + (headers or []))

    def send_error_response(self, method: str, e: HttpError) -> None:
        headers = [("Content-Type", "application/json; charset=utf-8"), ("X-Error-Message", e.message)]
        if e.code:
            headers.append(("X-Error-Code", e.code))
        headers += list(e.headers.items())
        body = json.dumps({"error": e.message}).encode()
        self.send_body(method, e.status, body, headers)

    def segments(self) -> list[str]:
        raw = urllib.parse.urlsplit(self.path).path
        return [urllib.parse.unquote(s) for s in raw.split("/")[1:]]

    # -- main host ------------------------------------------------------------------------------------

    def repo_for(self, org: str, name: str, method: str) -> Repo:
        """The repo, after the repo-level faults of the main host (forbidden, gated, flaky)."""
        state = self.server.state
        repo = state.repos.get(f"{org}/{name}")
        if repo is None:
            raise HttpError(404, "Repository not found", "RepoNotFound")
        if repo.fault == "forbidden":
            raise HttpError(403, "Access to this resource is forbidden")
        if repo.fault == "gated":
            auth = self.headers.get("Authorization")
            if not auth:
                raise HttpError(
                    401,
                    f"Access to model {repo.id} is restricted. You must have access to it and be authenticated.",
                    "GatedRepo",
                )
            if auth != f"Bearer {state.token}":
                raise HttpError(403, f"Access to model {repo.id} is restricted.", "GatedRepo")
        self.check_flaky(repo, method)
        return repo

    def check_flaky(self, repo: Repo, method: str) -> None:
        if repo.fault == "flaky" and method == "GET":
            path = urllib.parse.urlsplit(self.path).path
            if self.server.state.first_get(self.server.role, path):
                raise HttpError(503, "Service temporarily unavailable (flaky test repo)")

    @staticmethod
    def check_rev(repo: Repo, rev: str) -> None:
        if rev not in ("main", repo.commit):
            raise HttpError(404, f"Invalid rev id: {rev}", "RevisionNotFound")

    def route_main(self, method: str) -> None:
        seg = self.segments()
        if len(seg) >= 4 and seg[0] == "api" and seg[1] == "models":
            org, name, rest = seg[2], seg[3], seg[4:]
            if not rest:
                return self.api_info(method, org, name, "main")
            if rest[0] == "revision" and len(rest) == 2:
                return self.api_info(method, org, name, rest[1])
            if rest[0] == "tree" and len(rest) >= 2:
                return self.api_tree(method, org, name, rest[1], "/".join(s for s in rest[2:] if s))
        elif len(seg) >= 5 and seg[2] == "resolve":
            return self.resolve(method, seg[0], seg[1], seg[3], "/".join(seg[4:]))
        raise HttpError(404, "Not found")

    def api_info(self, method: str, org: str, name: str, rev: str) -> None:
        repo = self.repo_for(org, name, method)
        self.check_rev(repo, rev)
        siblings = []
        for f in repo.files.values():
            s: dict = {"rfilename": f.name, "size": f.size, "blobId": f.blob_id}
            if f.lfs:
                s["lfs"] = {"sha256": f.sha256, "size": f.size, "pointerSize": f.pointer_size}
            siblings.append(s)
        info = {
            "_id": repo.commit[:24],
            "id": repo.id,
            "modelId": repo.id,
            "sha": repo.commit,
            "private": False,
            "gated": "manual" if repo.fault == "gated" else False,
            "disabled": False,
            "tags": [],
            "siblings": siblings,
        }
        self.send_json(method, info, [("X-Repo-Commit", repo.commit)])

    def api_tree(self, method: str, org: str, name: str, rev: str, directory: str) -> None:
        repo = self.repo_for(org, name, method)
        self.check_rev(repo, rev)
        if directory:
            # The fixture repos are flat: no folder exists.
            raise HttpError(404, f"{directory} does not exist on {rev}", "EntryNotFound")
        entries = []
        for f in repo.files.values():
            e: dict = {"type": "file", "oid": f.blob_id, "size": f.size, "path": f.name}
            if f.lfs:
                e["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": f.pointer_size}
            entries.append(e)
        self.send_json(method, entries)

    def resolve(self, method: str, org: str, name: str, rev: str, filename: str) -> None:
        repo = self.repo_for(org, name, method)
        self.check_rev(repo, rev)
        f = repo.files.get(filename)
        if f is None:
            raise HttpError(
                404, f"{filename} does not exist on {rev}", "EntryNotFound", {"X-Repo-Commit": repo.commit}
            )
        if f.lfs:
            location = f"{self.server.state.cdn_base}/lfs/{org}/{name}/{f.sha256}?sig=test"
            self.send_body(
                method,
                302,
                b"",
                [
                    ("Location", location),
                    ("X-Repo-Commit", repo.commit),
                    ("ETag", f'"{f.blob_id}"'),
                    ("X-Linked-Etag", f'"{f.sha256}"'),
                    ("X-Linked-Size", str(f.size)),
                ],
            )
            return
        self.serve_content(method, repo, f, f.content, [("X-Repo-Commit", repo.commit)])

    # -- CDN ------------------------------------------------------------------------------------------

    def route_cdn(self, method: str) -> None:
        seg = self.segments()
        if len(seg) != 4 or seg[0] != "lfs":
            raise HttpError(404, "Not found")
        repo = self.server.state.repos.get(f"{seg[1]}/{seg[2]}")
        f = repo.by_sha.get(seg[3]) if repo is not None else None
        if f is None:
            raise HttpError(404, "No such object")
        self.check_flaky(repo, method)
        content = f.corrupt if repo.fault == "tiny-corrupt" and f.corrupt is not None else f.content
        self.serve_content(method, repo, f, content, [])

    # -- bodies ---------------------------------------------------------------------------------------

    def parse_range(self, size: int) -> tuple[int, int] | None | str:
        """(start, end inclusive), None for no usable Range, "unsatisfiable" for a 416."""
        value = self.headers.get("Range")
        if not value:
            return None
        value = value.strip()
        if not value.startswith("bytes=") or "," in value:
            return None
        first, _, last = value[len("bytes=") :].strip().partition("-")
        try:
            if first == "":
                suffix = int(last)
                if suffix <= 0:
                    return "unsatisfiable"
                return (max(0, size - suffix), size - 1) if size else "unsatisfiable"
            start = int(first)
            end = int(last) if last != "" else size - 1
        except ValueError:
            return None
        if start < 0 or (last != "" and end < start):
            return None
        if start >= size:
            return "unsatisfiable"
        return start, min(end, size - 1)

    def serve_content(self, method: str, repo: Repo, f: RepoFile, content: Content, extra: list) -> None:
        size = content.size
        role = self.server.role
        norange = repo.fault == "tiny-norange"
        headers = [("Content-Type", "application/octet-stream"), ("ETag", f'"{f.etag()}"')] + extra
        if not norange:
            headers.append(("Accept-Ranges", "bytes"))
        rng = None if norange else self.parse_range(size)
        if rng == "unsatisfiable":
            self.send_body(method, 416, b"", headers + [("Content-Range", f"bytes */{size}")])
            return
        if rng is None:
            status, start, count = 200, 0, size
        else:
            start, end = rng
            status, count = 206, end - start + 1
            headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
        self.send_response(status)
        self.finish_headers(headers + [("Content-Length", str(count))])
        if method == "HEAD":
            return

        if role == "cdn" and repo.fault in ("tiny-drop", "tiny-norange") and self.headers.get("Range") is None:
            content.send(self, start, count // 2)
            self.drop_connection()
            return
        if role == "cdn" and repo.fault == "tiny-stall":
            first = STALL_BYTES if count > STALL_BYTES else count // 2
            content.send(self, start, first)
            self.stall()
            return
        content.send(self, start, count)

    def drop_connection(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.connection.close()
        except OSError:
            pass

    def stall(self) -> None:
        """Send nothing more until the client disconnects (EOF or reset) or STALL_SECONDS pass."""
        self.close_connection = True
        deadline = time.monotonic() + STALL_SECONDS
        sock = self.connection
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                readable, _, errored = select.select([sock], [], [sock], min(left, 1.0))
                if errored:
                    break
                if readable:
                    data = sock.recv(65536)
                    if not data:
                        break  # client closed
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                break
        self.drop_connection()


# ----------------------------------------------------------------------------------------------------
# Main


def start_server(host: str, role: str, state: State) -> HubServer:
    server = HubServer((host, 0), role, state)
    threading.Thread(target=server.serve_forever, name=f"{role}-server", daemon=True).start()
    return server


def watch_stdin() -> None:
    try:
        while True:
            if not sys.stdin.buffer.read1(65536):
                break
    except Exception:
        pass
    os._exit(0)


def main() -> None:
    ap = argparse.ArgumentParser(description="Local fake Hugging Face hub with fault injection.")
    ap.add_argument("--log", help="append one JSON line per request to this file")
    ap.add_argument("--big-mb", type=int, default=0, help="add smolvlm-test/big with an N MiB big.bin")
    ap.add_argument("--token", default="hf_test_token", help="the token the gated repo accepts")
    ap.add_argument("--cdn-host", default="127.0.0.2", help="address of the CDN server (default 127.0.0.2)")
    ap.add_argument("--no-stdin-watch", action="store_true", help="do not exit when stdin reaches EOF")
    args = ap.parse_args()

    if not args.no_stdin_watch:
        threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: os._exit(0))

    state = State(build_repos(args.big_mb), args.token, args.log)
    main_server = start_server("127.0.0.1", "main", state)
    try:
        cdn_server = start_server(args.cdn_host, "cdn", state)
    except OSError as e:
        eprint(f"cannot bind the CDN on {args.cdn_host} ({e}); using 127.0.0.1 on another port")
        cdn_server = start_server("127.0.0.1", "cdn", state)
    cdn_host, cdn_port = cdn_server.server_address[:2]
    state.cdn_base = f"http://{cdn_host}:{cdn_port}"

    sys.stdout.write(f"http://127.0.0.1:{main_server.server_address[1]}\n")
    sys.stdout.flush()
    eprint(f"cdn at {state.cdn_base}; repos: {', '.join(sorted(state.repos))}")
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
