"""The latent-space explorer: a small JSON/PNG API over one trained run, and one static page.

Decoding runs in this Python process (a decoder pass for one 28x28 image takes about a
millisecond on a CPU). The server is the standard library's ThreadingHTTPServer, bound to the
loopback interface unless --host says otherwise. The run folder is fixed when the server starts;
clients never name files: the only files served are the page's three static files, from a fixed
table, and everything else is computed. API (GET only; every parameter is checked, a bad one gets
400 with {"error": "..."}; an unknown path 404):

    /api/info                      model, z_dim, conditional, classes, image shape, slider bound,
                                   the centre and two principal directions of the test latents
    /api/decode?z=a,b,...[&y=c]    PNG of E[x | z (, y)]
    /api/scatter                   2D coordinates (latent plane or principal directions) of up to
                                   2,000 test latents, their labels and test-set indices
    /api/image?index=i             test image i, its reconstruction (PNG data URIs), label, latent
    /api/interpolate?a=i&b=j&t=s[&y=c]   PNG of the decoded point (1 - t) z_i + t z_j
"""
from __future__ import annotations

import base64
import json
import math
import re
import struct
import sys
import threading
import zlib
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

import torch

from ..errors import VaelabError, arg
from ..plots import principal_directions
from ..runs.commands import open_run

MAX_SCATTER = 2000
MAX_QUERY = 8192                 # characters of a query string
MAX_CONNECTIONS = 64             # handler threads at once; further connections wait, then are dropped
IDLE_TIMEOUT_S = 10              # a connection that sends or reads nothing for this long is closed
DIGITS = re.compile(r"[0-9]{1,9}")   # an index or class: ASCII digits only (int() takes '٣', isdigit() '²')
STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/index.html": ("index.html", "text/html; charset=utf-8"),
          "/app.js": ("app.js", "text/javascript; charset=utf-8"), "/style.css": ("style.css", "text/css; charset=utf-8")}
CSP = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class BadRequest(Exception):
    """A request the API refuses; the message is sent to the client as {"error": message}."""


def png_bytes(image: torch.Tensor) -> bytes:
    """(H, W) values in [0, 1] -> an 8-bit grey PNG, (3, H, W) an RGB one, (4, H, W) RGBA (zlib, no other
    dependency)."""
    pixels = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    colour = {3: 2, 4: 6}[pixels.shape[0]] if pixels.dim() == 3 else 0   # the PNG colour type
    if pixels.dim() == 3:   # channels first -> each row's pixels with their channels side by side
        pixels = pixels.permute(1, 2, 0).reshape(pixels.shape[1], -1)
    h, w = pixels.shape[0], image.shape[-1]
    raw = b"".join(b"\x00" + bytes(row) for row in pixels.tolist())

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


class Explorer:
    """One trained image model and its test set, with the computations behind the API."""

    def __init__(self, run, run_seed=None, data_dir=None, device="cpu"):
        r, run_seed = open_run(run, run_seed)   # says so on stderr when the seed is unfinished
        self.run = r.path
        model = r.model(run_seed, device)
        self.device = next(model.parameters()).device
        data = r.data(self.device, data_dir=data_dir, whole_training_set=True)
        if data.image_shape is None:
            raise VaelabError(f"{r.path}: the model was trained on 2D points ({r.config.dataset}), not images; "
                              "the explorer shows decoded images, so pick an image run")
        self.model, self.config = model.eval(), {"model": r.config.model, "dataset": r.config.dataset}
        self.shape, self.image_hw = data.picture_shape, tuple(data.image_shape)
        self.test_x, self.test_grey, self.test_y = data.test_x, data.test_x_grey, data.test_y
        self.conditional = model.conditional
        self.n_classes = model.n_classes if model.conditional else 0
        self.z_dim = int(model.z_dim)
        self.lock = threading.Lock()   # one model call at a time (handler threads share it)
        with torch.inference_mode():
            z = torch.cat([self._encode(xb, yb) for xb, yb in zip(self.test_x.split(2000), self.test_y.split(2000))])
        self.z = z
        if self.z_dim > 2:
            self.centre, self.dirs = principal_directions(z)
        else:   # the latent axes themselves
            self.centre, self.dirs = torch.zeros(self.z_dim, device=z.device), torch.eye(self.z_dim, device=z.device)
        # Sliders span the test latents generously; requests beyond the bound are refused.
        self.z_bound = float(max(4.0, math.ceil(1.5 * z.abs().max().item())))
        gen = torch.Generator().manual_seed(0)
        n = len(z)
        self.scatter_idx = (torch.randperm(n, generator=gen)[:MAX_SCATTER].sort().values if n > MAX_SCATTER
                            else torch.arange(n))

    # -- model calls ------------------------------------------------------------------------
    def _encode(self, x, y):
        return self.model.posterior_mean(x, y if self.conditional else None)

    def _decode(self, z: torch.Tensor, y: int | None) -> torch.Tensor:
        yy = torch.full((len(z),), y, dtype=torch.long, device=self.device) if self.conditional else None
        out = self.model.mean_x_given_z(z, yy)
        return out.reshape(len(z), *self.shape)

    def project(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.centre) @ self.dirs[:2].T

    # -- API ------------------------------------------------------------------------------
    def info(self) -> dict:
        return {"run": self.run.name, "model": self.config["model"], "dataset": self.config["dataset"],
                "z_dim": self.z_dim, "conditional": self.conditional, "n_classes": self.n_classes,
                "image_shape": list(self.image_hw), "n_test": len(self.test_x), "z_bound": self.z_bound,
                "centre": self.centre.tolist(), "directions": self.dirs[:2].tolist(),
                "plane": "latent plane" if self.z_dim <= 2 else "two leading principal directions of the test latents",
                "z_start": self.z.mean(0).tolist()}

    def decode_png(self, z: list[float], y: int | None) -> bytes:
        with self.lock, torch.inference_mode():
            img = self._decode(torch.tensor([z], dtype=torch.float32, device=self.device), y)[0]
        return png_bytes(img)

    def scatter(self) -> dict:
        idx = self.scatter_idx
        pts = self.project(self.z[idx.to(self.z.device)]).cpu()
        if pts.shape[1] == 1:
            pts = torch.cat([pts, torch.zeros_like(pts)], 1)
        return {"points": [[round(a, 4), round(b, 4)] for a, b in pts.tolist()],
                "labels": self.test_y[idx.to(self.test_y.device)].tolist(), "indices": idx.tolist()}

    def image(self, index: int) -> dict:
        with self.lock, torch.inference_mode():
            x, y = self.test_x[index:index + 1], self.test_y[index:index + 1]
            z = self._encode(x, y)
            recon = self._decode(z, int(y[0]))[0]
        return {"index": index, "label": int(y[0]), "z": z[0].tolist(),
                "point": self.project(z)[0].tolist(),
                "original": data_uri(png_bytes(self.test_grey[index].reshape(self.shape))),
                "reconstruction": data_uri(png_bytes(recon))}

    def interpolate_png(self, a: int, b: int, t: float, y: int | None) -> bytes:
        with self.lock, torch.inference_mode():
            z = (1 - t) * self.z[a] + t * self.z[b]
            label = y if y is not None else int(self.test_y[a])
            img = self._decode(z[None], label)[0]
        return png_bytes(img)

    # -- parameter checks -------------------------------------------------------------------
    def parse(self, path: str, query: dict) -> tuple:
        """(kind, payload) for an API path with its parsed query; BadRequest for bad parameters."""
        allowed = {"/api/info": set(), "/api/scatter": set(), "/api/decode": {"z", "y"},
                   "/api/image": {"index"}, "/api/interpolate": {"a", "b", "t", "y"}}[path]
        unknown = sorted(set(query) - allowed)
        if unknown:
            raise BadRequest(f"unknown parameter(s) {', '.join(unknown)} for {path}; it takes "
                             f"{', '.join(sorted(allowed)) or 'none'}")
        for k, v in query.items():
            if len(v) != 1:
                raise BadRequest(f"parameter {k} given {len(v)} times; give it once")
        q = {k: v[0] for k, v in query.items()}
        if path == "/api/info":
            return "json", self.info()
        if path == "/api/scatter":
            return "json", self.scatter()
        if path == "/api/decode":
            return "png", self.decode_png(self._z(q), self._y(q))
        if path == "/api/image":
            return "json", self.image(self._index(q, "index"))
        a, b = self._index(q, "a"), self._index(q, "b")
        t = self._number(q, "t")
        if not 0 <= t <= 1:
            raise BadRequest(f"t = {t}: give a number from 0 to 1")
        return "png", self.interpolate_png(a, b, t, self._y(q, required=False))

    def _number(self, q: dict, name: str) -> float:
        if name not in q:
            raise BadRequest(f"missing parameter {name}")
        try:
            v = float(q[name])
        except ValueError:
            raise BadRequest(f"{name} = {q[name][:40]!r}: not a number") from None
        if not math.isfinite(v):
            raise BadRequest(f"{name} = {q[name][:40]}: give a finite number")
        return v

    def _z(self, q: dict) -> list[float]:
        if "z" not in q:
            raise BadRequest(f"missing parameter z: {self.z_dim} comma-separated numbers")
        parts = q["z"].split(",")
        if len(parts) != self.z_dim:
            raise BadRequest(f"z has {len(parts)} value(s); this model's latent has {self.z_dim}")
        z = []
        for i, p in enumerate(parts):
            try:
                v = float(p)
            except ValueError:
                raise BadRequest(f"z[{i}] = {p[:40]!r}: not a number") from None
            if not math.isfinite(v) or abs(v) > self.z_bound:
                raise BadRequest(f"z[{i}] = {p[:40]}: give a finite number from {-self.z_bound:g} to {self.z_bound:g}")
            z.append(v)
        return z

    def _y(self, q: dict, required: bool = True) -> int | None:
        if not self.conditional:
            if "y" in q:
                raise BadRequest("y: this model is not conditional; leave y out")
            return None
        if "y" not in q:
            if required:
                raise BadRequest(f"missing parameter y: this conditional model needs a class 0..{self.n_classes - 1}")
            return None
        if not DIGITS.fullmatch(q["y"]) or int(q["y"]) >= self.n_classes:
            raise BadRequest(f"y = {q['y'][:40]!r}: give a class from 0 to {self.n_classes - 1}")
        return int(q["y"])

    def _index(self, q: dict, name: str) -> int:
        if name not in q:
            raise BadRequest(f"missing parameter {name}: a test image index 0..{len(self.test_x) - 1}")
        if not DIGITS.fullmatch(q[name]) or int(q[name]) >= len(self.test_x):
            raise BadRequest(f"{name} = {q[name][:40]!r}: give a test image index from 0 to {len(self.test_x) - 1}")
        return int(q[name])


def _static(name: str) -> bytes:
    return (resources.files("vaelab.explorer") / "static" / name).read_bytes()


class Handler(BaseHTTPRequestHandler):
    server_version = "vaelab-explore"
    timeout = IDLE_TIMEOUT_S         # socket timeout: idle or half-open connections do not hold a thread
    explorer: Explorer = None        # set on the subclass make_server builds
    allowed_hosts: set | None = None
    verbose = False

    def log_message(self, format, *args):   # noqa: A002 (the base class's name)
        if self.verbose:
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", CSP)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: dict) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._json(status, {"error": message, "status": int(status)})

    def do_GET(self):  # noqa: N802 (http.server's name)
        host = (self.headers.get("Host") or "").lower()
        if self.allowed_hosts is not None and host not in self.allowed_hosts:
            return self._error(HTTPStatus.BAD_REQUEST, f"unexpected Host header {host[:60]!r}; open the address "
                                                       "`vaelab explore` printed")
        parts = urlsplit(self.path)
        path = parts.path   # never decoded, never mapped to a file: only exact matches below
        if path in STATIC:
            name, ctype = STATIC[path]
            return self._send(HTTPStatus.OK, _static(name), ctype)
        if not path.startswith("/api/") or path not in ("/api/info", "/api/scatter", "/api/decode", "/api/image",
                                                         "/api/interpolate"):
            return self._error(HTTPStatus.NOT_FOUND, f"no such page {path[:80]!r}; the API is /api/info, /api/decode, "
                                                     "/api/scatter, /api/image, /api/interpolate")
        if len(parts.query) > MAX_QUERY:
            return self._error(HTTPStatus.BAD_REQUEST, f"query longer than {MAX_QUERY} characters")
        try:
            query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
        except ValueError:
            return self._error(HTTPStatus.BAD_REQUEST, "malformed query string; use name=value pairs joined by &")
        try:
            kind, payload = self.explorer.parse(path, query)
        except BadRequest as e:
            return self._error(HTTPStatus.BAD_REQUEST, str(e))
        except Exception as e:   # noqa: BLE001 (an internal error is reported, the server keeps running)
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(e).__name__}: {str(e)[:200]}")
        if kind == "png":
            return self._send(HTTPStatus.OK, payload, "image/png")
        return self._json(HTTPStatus.OK, payload)

    do_HEAD = do_GET

    def _not_allowed(self):
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not supported; the explorer's API is GET only")

    do_POST = do_PUT = do_DELETE = do_PATCH = _not_allowed


class ExplorerServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with at most MAX_CONNECTIONS handler threads, quiet about clients that hang up."""

    daemon_threads = True

    def __init__(self, *args, **kwargs):
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address):
        # Wait for a free thread (idle connections time out, so one frees up); drop the connection if none does.
        if not self.slots.acquire(timeout=IDLE_TIMEOUT_S):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):   # the client hung up or went quiet
            return
        super().handle_error(request, client_address)


def make_server(explorer: Explorer, host: str = "127.0.0.1", port: int = 0, verbose: bool = False) -> ThreadingHTTPServer:
    """A server (not yet serving) for `explorer`; port 0 picks a free port (see server.server_address)."""
    handler = type("ExplorerHandler", (Handler,), {"explorer": explorer, "verbose": verbose})
    try:
        server = ExplorerServer((host, port), handler)
    except OSError as e:
        raise VaelabError(f"cannot listen on {host}:{port} ({e.strerror or e}); pick another {arg('port')} (0: any free "
                          "port)") from None
    server.daemon_threads = True
    if host in LOOPBACK:   # refuse other Host headers (DNS rebinding): only the loopback names
        p = server.server_address[1]
        handler.allowed_hosts = {f"{h}:{p}" for h in ("127.0.0.1", "localhost", "[::1]")}
    return server


def url_of(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def serve(run, host: str = "127.0.0.1", port: int = 8765, open_browser: bool = True, run_seed=None, data_dir=None,
          device="cpu", verbose: bool = False) -> None:
    """Load RUN, serve the explorer until interrupted, and open it in the default browser."""
    explorer = Explorer(run, run_seed=run_seed, data_dir=data_dir, device=device)
    server = make_server(explorer, host, port, verbose)
    url = url_of(server)
    if host not in LOOPBACK:
        print(f"vaelab explore: warning: listening on {host}, not only on this machine: anyone who can reach it "
              "can use the explorer")
    print(f"vaelab explore: {run} ({explorer.config['model']}, z = {explorer.z_dim}) at {url}  (Ctrl-C to stop)",
          flush=True)
    if open_browser:
        import webbrowser
        threading.Timer(0.3, webbrowser.open, args=(url,)).start()
    try:
        server.serve_forever()
    finally:
        server.server_close()
