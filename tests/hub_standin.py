"""A local stand-in of the Hugging Face Hub (and of a raw-file host) for download tests.

Two standard-library HTTP servers on 127.0.0.1: the *hub* (what ``HF_ENDPOINT`` points at)
and a *cdn* on another port (another origin, as the Hub's LFS storage is). They answer the
calls huggingface_hub 2.4 makes for ``HfApi.repo_info``, ``list_repo_tree``,
``get_paths_info``, ``snapshot_download`` and ``hf_hub_download`` (routes and headers as in
huggingface_hub's ``hf_api.py``, ``file_download.py`` and ``utils/_pagination.py``):

- ``GET /api/datasets/<repo>/revision/<rev>``: ``{"id", "sha"}``.
- ``GET /api/datasets/<repo>/tree/<rev>[/<path>]?recursive=..``: entries ``{"type", "oid",
  "size", "path", "lfs": {"oid": sha256, "size", "pointerSize"}}``, ``page_size`` per page,
  further pages linked with ``Link: <...>; rel="next"``.
- ``POST /api/datasets/<repo>/paths-info/<rev>`` (form ``paths=..``): the entries that exist.
- ``HEAD|GET /datasets/<repo>/resolve/<rev>/<path>``: a git file is answered here (``ETag``
  = its git blob id, ``X-Repo-Commit``, ``Content-Length``, ranges); an LFS file is a 302 to
  the cdn with ``X-Linked-Etag`` (its sha256), ``X-Linked-Size`` and ``X-Repo-Commit``.
- cdn ``HEAD|GET /lfs/<sha256>``: the bytes, ``Range: bytes=a-[b]`` answered with 206.
- ``raw`` files (e.g. the sample-order CSV) at any other path of the hub.

Faults, per repo path, for the first ``times`` GETs of its bytes: ``cut`` (send ``after``
bytes of a full ``Content-Length``, then close the connection), ``stall`` (send ``after``
bytes, set :attr:`HubStandIn.stalled`, then hold the connection until :meth:`stop`) and
``corrupt`` (serve the bytes with one flipped, same length, while the listing keeps the true
sha256). Every request is recorded in :attr:`HubStandIn.requests`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

COMMIT = "5a3bd1c0c2f4e3d2b1a09f8e7d6c5b4a39281706"  # the stand-in repo's one commit (40 hex)


@dataclass
class Fault:
    kind: str  # "cut" | "stall" | "corrupt"
    after: int = 0  # bytes sent before a cut or stall
    times: int = 1  # how many GETs of the file it affects


@dataclass(frozen=True)
class Request:
    server: str  # "hub" | "cdn"
    method: str
    path: str
    range: str | None
    status: int


def git_blob_id(data: bytes) -> str:
    """The git object id of a file's content (what the Hub lists as ``oid``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    sha = hashlib.sha256(data).hexdigest()
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n".encode()
    )


def read_tree(root: Path) -> dict[str, bytes]:
    """``{posix path: bytes}`` of every file under ``root``."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


class HubStandIn:
    """Serve one dataset repo ``files`` (``{path: bytes}``); LFS are the paths ``is_lfs`` picks.

    Use as a context manager; :attr:`endpoint` is the value for ``HF_ENDPOINT``.
    """

    def __init__(
        self,
        repo_id: str,
        files: dict[str, bytes],
        is_lfs=lambda path: path.endswith((".ply", ".pcd")),
        raw: dict[str, bytes] | None = None,
        page_size: int = 1000,
    ) -> None:
        self.repo_id = repo_id
        self.files = dict(files)
        self.lfs = {p for p in files if is_lfs(p)}
        self.by_sha256 = {
            hashlib.sha256(d).hexdigest(): p for p, d in files.items() if p in self.lfs
        }
        self.raw = dict(raw or {})
        self.page_size = page_size
        self.faults: dict[str, Fault] = {}
        self.requests: list[Request] = []
        self.stalled = threading.Event()
        self.released = threading.Event()
        self._lock = threading.Lock()
        self._servers: dict[str, ThreadingHTTPServer] = {}

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> HubStandIn:
        for name in ("hub", "cdn"):
            server = _QuietServer(("127.0.0.1", 0), _handler(self, name))
            self._servers[name] = server
            threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self.released.set()
        for server in self._servers.values():
            server.shutdown()
            server.server_close()

    @property
    def endpoint(self) -> str:
        return self.url("hub")

    def url(self, server: str, path: str = "") -> str:
        host, port = self._servers[server].server_address[:2]
        return f"http://{host}:{port}{path}"

    # -- repo contents ---------------------------------------------------------------------
    def entry(self, path: str) -> dict:
        data = self.files[path]
        if path in self.lfs:
            pointer = lfs_pointer(data)
            lfs = {
                "oid": hashlib.sha256(data).hexdigest(),
                "size": len(data),
                "pointerSize": len(pointer),
            }
            return {
                "type": "file",
                "oid": git_blob_id(pointer),
                "size": len(data),
                "path": path,
                "lfs": lfs,
            }
        return {"type": "file", "oid": git_blob_id(data), "size": len(data), "path": path}

    def folders(self) -> set[str]:
        return {"/".join(p.split("/")[:i]) for p in self.files for i in range(1, p.count("/") + 1)}

    def tree(self, folder: str, recursive: bool) -> list[dict] | None:
        """Entries under ``folder`` ("" = root), folders first as the Hub lists them; None when
        ``folder`` does not exist."""
        if folder and folder not in self.folders():
            return None
        prefix = f"{folder}/" if folder else ""

        def wanted(path: str) -> bool:
            return path.startswith(prefix) and (recursive or "/" not in path[len(prefix) :])

        dirs = [{"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "path": d}
                for d in sorted(self.folders()) if wanted(d)]  # fmt: skip
        return dirs + [self.entry(p) for p in sorted(self.files) if wanted(p)]

    def served_bytes(self, path: str) -> bytes:
        data = self.files[path]
        fault = self.faults.get(path)
        if fault is not None and fault.kind == "corrupt" and fault.times > 0:
            return data[:-1] + bytes([data[-1] ^ 0xFF])
        return data

    def take_fault(self, path: str) -> Fault | None:
        """The fault this GET of ``path`` meets (counting it), or None."""
        with self._lock:
            fault = self.faults.get(path)
            if fault is None or fault.times <= 0:
                return None
            if fault.kind != "corrupt":
                fault.times -= 1
            return fault

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # clients that are killed or cut off mid-transfer are what the tests do


def _handler(hub: HubStandIn, server: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep pytest's output clean
            pass

        def do_HEAD(self) -> None:
            self.route(head=True)

        def do_GET(self) -> None:
            self.route(head=False)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            form = parse_qs(self.rfile.read(length).decode())
            prefix = f"/api/datasets/{hub.repo_id}/paths-info/"
            path = urlsplit(self.path).path
            if server != "hub" or not path.startswith(prefix):
                return self.error(404, "EntryNotFound")
            if not self.revision_ok(unquote(path[len(prefix) :])):
                return None
            known = hub.folders()
            entries = [hub.entry(p) if p in hub.files else {"type": "directory", "path": p,
                       "oid": hashlib.sha1(p.encode()).hexdigest()}
                       for p in form.get("paths", []) if p in hub.files or p in known]  # fmt: skip
            self.json(entries)

        # -- routing -----------------------------------------------------------------------
        def route(self, head: bool) -> None:
            url = urlsplit(self.path)
            path = unquote(url.path)
            if server == "cdn":
                sha = path.removeprefix("/lfs/")
                if sha not in hub.by_sha256:
                    return self.error(404, "EntryNotFound")
                return self.send_file(hub.by_sha256[sha], head, {})
            api = f"/api/datasets/{hub.repo_id}/"
            resolve = f"/datasets/{hub.repo_id}/resolve/"
            if path.startswith(api + "revision/"):
                if self.revision_ok(path[len(api + "revision/") :]):
                    self.json({"id": hub.repo_id, "sha": COMMIT, "private": False})
            elif path.startswith(api + "tree/"):
                rev, _, folder = path[len(api + "tree/") :].partition("/")
                if self.revision_ok(rev):
                    self.list_tree(folder, url.query)
            elif path.startswith(resolve):
                rev, _, file = path[len(resolve) :].partition("/")
                if not self.revision_ok(rev):
                    return None
                if file not in hub.files:
                    return self.error(404, "EntryNotFound")
                self.resolve(file, head)
            elif path.startswith(("/api/", "/datasets/")):
                self.error(404, "RepoNotFound")
            elif path in hub.raw:
                self.send_bytes(hub.raw[path], head, {}, fault_key=path)
            else:
                self.error(404, None)

        def revision_ok(self, rev: str) -> bool:
            if rev in ("main", COMMIT):
                return True
            self.error(404, "RevisionNotFound")
            return False

        def list_tree(self, folder: str, query: str) -> None:
            params = parse_qs(query)
            recursive = params.get("recursive", ["false"])[0].lower() in ("true", "1")
            entries = hub.tree(folder, recursive)
            if entries is None:
                return self.error(404, "EntryNotFound")
            start = int(params.get("cursor", ["0"])[0])
            page = entries[start : start + hub.page_size]
            headers = {}
            if start + hub.page_size < len(entries):
                base = hub.url("hub", urlsplit(self.path).path)  # already quoted
                nxt = f"{base}?recursive={str(recursive).lower()}&cursor={start + hub.page_size}"
                headers["Link"] = f'<{nxt}>; rel="next"'
            self.json(page, headers)

        def resolve(self, file: str, head: bool) -> None:
            common = {"X-Repo-Commit": COMMIT}
            if file in hub.lfs:
                data = hub.files[file]
                sha = hashlib.sha256(data).hexdigest()
                self.reply(302, b"", head, {**common, "Location": hub.url("cdn", f"/lfs/{sha}"),
                           "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(data)),
                           "ETag": f'"{git_blob_id(lfs_pointer(data))}"'})  # fmt: skip
            else:
                self.send_file(file, head, {**common, "ETag": f'"{git_blob_id(hub.files[file])}"'})

        # -- responses ---------------------------------------------------------------------
        def send_file(self, file: str, head: bool, headers: dict) -> None:
            self.send_bytes(hub.served_bytes(file), head, headers, fault_key=file)

        def send_bytes(self, data: bytes, head: bool, headers: dict, fault_key: str) -> None:
            start, end = 0, len(data) - 1
            status = 200
            requested = self.headers.get("Range")
            if requested:
                spec = requested.removeprefix("bytes=")
                first, _, last = spec.partition("-")
                if (
                    not requested.startswith("bytes=")
                    or not first.isdigit()
                    or int(first) >= len(data)
                ):
                    return self.reply(416, b"", head, {"Content-Range": f"bytes */{len(data)}"})
                start, end = int(first), min(int(last), end) if last else end
                status = 206
                headers = {**headers, "Content-Range": f"bytes {start}-{end}/{len(data)}"}
            body = data[start : end + 1]
            fault = None if head else hub.take_fault(fault_key)
            headers = {
                **headers,
                "Accept-Ranges": "bytes",
                "Content-Type": "application/octet-stream",
            }
            if fault is None or fault.kind == "corrupt":
                return self.reply(status, body, head, headers)
            self.start_reply(status, len(body), headers)
            self.wfile.write(body[: fault.after])
            self.wfile.flush()
            if fault.kind == "stall":
                hub.stalled.set()
                hub.released.wait(timeout=120)
            self.close_connection = True
            with contextlib.suppress(OSError):  # the client may be gone (killed) already
                self.connection.shutdown(socket.SHUT_RDWR)

        def start_reply(self, status: int, length: int, headers: dict) -> None:
            hub.record(Request(server, self.command, self.path, self.headers.get("Range"), status))
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(length))
            self.end_headers()

        def reply(self, status: int, body: bytes, head: bool, headers: dict) -> None:
            self.start_reply(status, len(body), headers)
            if not head:
                self.wfile.write(body)

        def json(self, payload, headers: dict | None = None) -> None:
            body = json.dumps(payload).encode()
            self.reply(200, body, False, {"Content-Type": "application/json", **(headers or {})})

        def error(self, status: int, code: str | None) -> None:
            body = json.dumps({"error": f"{code or 'NotFound'}: {self.path}"}).encode()
            headers = {"Content-Type": "application/json"}
            if code:
                headers["X-Error-Code"] = code
            self.reply(status, body, self.command == "HEAD", headers)

    return Handler
