"""`vaelab explore`: the API without a browser (urllib), and the page in a real headless chromium."""
import json
import os
import shutil
import tempfile
import socket
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from vaelab.errors import VaelabError
from vaelab.explorer import Explorer, make_server
from vaelab.explorer.server import png_bytes, url_of
from vaelab.config import TrainConfig
from vaelab.runs.train import train_run


def _tiny_run(path, model="vae", dataset="mnist-5k", **options):
    return train_run(TrainConfig(model=model, dataset=dataset, out=str(path), iters=30, iwae_k=[], eval_repeats=1,
                                 threads=1, progress=False, model_options=options))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("explore")
    return {"vae": _tiny_run(base / "vae"), "cvae": _tiny_run(base / "cvae", "cvae", z_dim=10)}


@pytest.fixture(scope="module")
def cvae_explorer(runs):
    return Explorer(runs["cvae"])


@pytest.fixture(scope="module")
def server(runs):
    srv = make_server(Explorer(runs["vae"]), "127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield url_of(srv)
    srv.shutdown()
    srv.server_close()


def _get(url, method="GET"):
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


def _error(url, status):
    code, ctype, body = _get(url)
    assert (code, ctype) == (status, "application/json"), (url, code, body[:200])
    return json.loads(body)["error"]


def test_png_encoder_writes_a_valid_png(tmp_path):
    import matplotlib.image as mpimg
    import torch

    img = torch.linspace(0, 1, 28 * 20).reshape(28, 20)
    (tmp_path / "a.png").write_bytes(png_bytes(img))
    back = mpimg.imread(tmp_path / "a.png")
    assert back.shape[:2] == (28, 20) and abs(float(back[-1, -1]) - 1.0) < 1e-6 and float(back[0, 0]) == 0.0


def test_png_encoder_writes_colour_channels_first_images(tmp_path):
    import torch
    from PIL import Image

    img = torch.rand(3, 5, 7, generator=torch.Generator().manual_seed(0))
    (tmp_path / "c.png").write_bytes(png_bytes(img))
    back = Image.open(tmp_path / "c.png")
    assert back.mode == "RGB" and back.size == (7, 5)
    assert back.getpixel((6, 4)) == tuple((img[:, 4, 6] * 255).round().int().tolist())   # (x, y): column 6, row 4


def test_api_answers(server):
    code, ctype, body = _get(server + "api/info")
    info = json.loads(body)
    assert code == 200 and info["z_dim"] == 10 and info["image_shape"] == [28, 28] and not info["conditional"]
    assert len(info["directions"]) == 2 and len(info["centre"]) == 10
    z = ",".join(["0.5"] * 10)
    code, ctype, body = _get(server + f"api/decode?z={z}")
    assert (code, ctype) == (200, "image/png") and body.startswith(b"\x89PNG")
    assert _get(server + "api/decode?z=" + ",".join(["-0.5"] * 10))[2] != body
    scatter = json.loads(_get(server + "api/scatter")[2])
    assert len(scatter["points"]) == len(scatter["labels"]) == len(scatter["indices"]) == 1000   # mnist-5k test set
    image = json.loads(_get(server + "api/image?index=3")[2])
    assert image["original"].startswith("data:image/png;base64,") and image["reconstruction"].startswith("data:image/png")
    code, ctype, body = _get(server + "api/interpolate?a=0&b=1&t=0.3")
    assert (code, ctype) == (200, "image/png")
    code, ctype, body = _get(server)
    assert code == 200 and b"app.js" in body and ctype.startswith("text/html")


@pytest.mark.parametrize("query, needle", [
    ("api/decode?z=1,2", "has 2 value(s)"),
    ("api/decode", "missing parameter z"),
    ("api/decode?z=" + ",".join(["nan"] * 10), "finite"),
    ("api/decode?z=" + ",".join(["1e9"] * 10), "from -"),
    ("api/decode?z=" + ",".join(["x"] * 10), "not a number"),
    ("api/decode?z=" + ",".join(["0"] * 10) + "&y=1", "not conditional"),
    ("api/decode?z=0&z=1", "given 2 times"),
    ("api/image?index=1000", "from 0 to 999"),
    ("api/image?index=-1", "from 0 to 999"),
    ("api/image?index=" + "4" * 4400, "index = '4444"),      # int() refuses over 4,300 digits
    ("api/image?index=%C2%B2", "index = '²'"),                # '²'.isdigit(), but int('²') fails
    ("api/image?index=%D9%A3", "index = '٣'"),                # int('٣') == 3: ASCII digits only
    ("api/interpolate?a=0&b=%C2%B9&t=0.5", "b = '¹'"),
    ("api/image", "missing parameter index"),
    ("api/interpolate?a=0&b=1&t=1.5", "from 0 to 1"),
    ("api/interpolate?a=0&b=1&t=inf", "finite"),
    ("api/info?path=/etc/passwd", "unknown parameter"),
])
def test_bad_parameters_get_400_with_a_message(server, query, needle):
    assert needle in _error(server + query, 400)


@pytest.mark.parametrize("path", ["../config.json", "%2e%2e/config.json", "..%2fconfig.json", "static/../../etc/passwd",
                                  "config.json", "metrics.json", "seed-0/checkpoint.pt", "api/nope", "favicon.ico",
                                  "%2e%2e%2f%2e%2e%2fetc%2fpasswd"])
def test_no_files_outside_the_fixed_table(server, path):
    url = server + path   # sent as written (urllib does not normalise "..")
    assert "no such page" in _error(url, 404)


def test_other_methods_and_hosts_are_refused(server):
    assert _get(server + "api/info", method="POST")[0] == 405
    req = urllib.request.Request(server + "api/info", headers={"Host": "attacker.example:80"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 400


def test_conditional_model_needs_a_class(runs):
    ex = Explorer(runs["cvae"])
    assert ex.info()["conditional"] and ex.info()["n_classes"] == 10
    from vaelab.explorer.server import BadRequest
    z = {"z": [",".join(["0"] * 10)]}
    with pytest.raises(BadRequest, match="needs a class"):
        ex.parse("/api/decode", z)
    for y in ("10", "²", "9" * 5000, "-1", " 3"):
        with pytest.raises(BadRequest, match="from 0 to 9"):
            ex.parse("/api/decode", {**z, "y": [y]})
    kind, png3 = ex.parse("/api/decode", {**z, "y": ["3"]})
    assert kind == "png" and png3 != ex.parse("/api/decode", {**z, "y": ["7"]})[1]


def test_unusable_runs_are_refused(tmp_path):
    with pytest.raises(VaelabError, match="not a vaelab run folder"):
        Explorer(tmp_path)
    run = _tiny_run(tmp_path / "moons", "ae", "moons", z_dim=2)
    with pytest.raises(VaelabError, match="2D points"):
        Explorer(run)


def test_cli_port_in_use_is_a_one_line_error(runs, capsys):
    from vaelab.cli import main
    srv = make_server(Explorer(runs["vae"]), "127.0.0.1", 0)
    try:
        port = srv.server_address[1]
        assert main(["explore", str(runs["vae"]), "--port", str(port), "--no-browser"]) == 2
        assert "pick another --port" in capsys.readouterr().err
    finally:
        srv.server_close()


# ------------------------------------------------------------------------------ fuzzing the query parsing
_PARAMS = {"api/info": [], "api/scatter": [], "api/decode": ["z", "y"], "api/image": ["index"],
           "api/interpolate": ["a", "b", "t", "y"]}
_ODD = st.sampled_from(["0", "3", "999", "1000", "4" * 4400, "\u00b2", "\u0663", "\u00b9\u00b2", "1e309", "nan", "-0",
                        "0.5", "+1", "0x1", " 1", "", ",".join(["0"] * 10), ",".join(["1e9"] * 10)])
_VALUES = st.one_of(_ODD, _ODD, st.integers(-10**6, 10**6).map(str), st.text(max_size=30))


@st.composite
def _requests(draw) -> tuple[str, str]:
    """An API path and a query: mostly its own parameters with odd values, sometimes raw characters."""
    path = draw(st.sampled_from(sorted(_PARAMS)))
    if draw(st.integers(0, 4)) == 0:
        return path, draw(st.text(alphabet="=&,;.+-%0123456789abcdefzyxtEinx\u00b2\u0663", max_size=60))
    names = st.sampled_from(_PARAMS[path] + ["x"]) if _PARAMS[path] else st.sampled_from(["x", "path"])
    pairs = draw(st.lists(st.tuples(names, _VALUES), max_size=5))
    if draw(st.booleans()):   # each of the path's parameters exactly once, which gets past the first checks
        pairs = [(name, draw(_VALUES)) for name in _PARAMS[path]]
    return path, urlencode(pairs)


def _raw_get(base: str, target: str) -> int:
    """Status of `GET target` sent as raw bytes (urllib refuses some of what a client may send)."""
    host, port = urlsplit(base).hostname, urlsplit(base).port
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(f"GET {target} HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n".encode("utf-8", "surrogateescape"))
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return int(reply.split(b" ", 2)[1])


@settings(max_examples=150, deadline=None)
@given(request=_requests())
@example(request=("api/image", "index=%C2%B2"))
@example(request=("api/interpolate", "a=0&b=" + "9" * 4400 + "&t=0"))
def test_fuzz_any_query_gets_200_or_a_4xx_never_500(server, request):
    path, query = request
    query = "".join(c for c in query if c.isprintable() and not c.isspace())   # one request line
    assert _raw_get(server, f"/{path}?{query}") in (200, 400, 404)


@settings(max_examples=150, deadline=None)
@given(request=_requests())
@example(request=("api/decode", "z=" + ",".join(["0"] * 10) + "&y=%C2%B2"))
def test_fuzz_conditional_model_parse_raises_only_bad_request(cvae_explorer, request):
    path, query = request
    from vaelab.explorer.server import BadRequest
    try:
        parsed = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        return   # the handler answers 400 before parse
    try:
        kind, _ = cvae_explorer.parse("/" + path, parsed)
    except BadRequest as e:
        assert "\n" not in str(e)
    else:
        assert kind in ("json", "png")


# ------------------------------------------------------------------------------ connections
def test_idle_connections_are_closed_and_threads_bounded(runs, monkeypatch):
    import vaelab.explorer.server as server_module
    monkeypatch.setattr(server_module, "MAX_CONNECTIONS", 3)
    monkeypatch.setattr(server_module, "IDLE_TIMEOUT_S", 1)
    srv = make_server(Explorer(runs["vae"]), "127.0.0.1", 0)
    srv.RequestHandlerClass.timeout = 1
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    before = threading.active_count()
    socks = []
    try:
        socks = [socket.create_connection(srv.server_address, timeout=10) for _ in range(8)]   # send nothing
        time.sleep(0.5)
        assert threading.active_count() - before <= 3
        start = time.monotonic()
        assert socks[0].recv(1) == b""   # closed by the server, not by our 10 s timeout
        assert time.monotonic() - start < 5
        assert _raw_get(url_of(srv), "/api/info") == 200   # still serving once the idle ones are gone
    finally:
        for s in socks:
            s.close()
        srv.shutdown()
        srv.server_close()


def test_client_hang_ups_are_not_printed(runs, capsys):
    srv = make_server(Explorer(runs["vae"]), "127.0.0.1", 0)
    try:
        for exc in (BrokenPipeError(32, "Broken pipe"), ConnectionResetError(104, "Connection reset by peer"),
                    TimeoutError("timed out")):
            try:
                raise exc
            except OSError:
                srv.handle_error(None, ("127.0.0.1", 1))
        assert capsys.readouterr().err == ""
        try:
            raise ValueError("a real bug")
        except ValueError:
            srv.handle_error(None, ("127.0.0.1", 1))
        assert "a real bug" in capsys.readouterr().err   # other errors are still shown
    finally:
        srv.server_close()


# ------------------------------------------------------------------------------ a real browser
def _browser_tools():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return None, "selenium is not installed (pip install -e .[test])"
    if not chromium or not driver:
        return None, "Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
    return (chromium, driver), ""


def test_page_in_headless_chromium(server):
    tools, reason = _browser_tools()
    if tools is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    chromium, driver_path = tools
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="vaelab-chromium-")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={profile}", "--window-size=1400,1000"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        browser.set_page_load_timeout(60)
        browser.get(server)
        wait = WebDriverWait(browser, 60)
        wait.until(lambda b: b.execute_script("return document.body.dataset.ready === '1'"))
        src = lambda: browser.execute_script("return document.getElementById('decoded').src")  # noqa: E731
        query = lambda: browser.execute_script("return document.getElementById('decoded').dataset.query")  # noqa: E731
        wait.until(lambda b: src().startswith("blob:"))
        before_src, before_query = src(), query()
        assert len(browser.find_elements("css selector", "input.zslider")) == 10
        browser.execute_script("const s = document.getElementById('z0'); s.value = 2.5;"
                               "s.dispatchEvent(new Event('input', {bubbles: true}));")
        wait.until(lambda b: src() != before_src and query() != before_query)
        assert "z=2.5000," in query()
        pixels = browser.execute_script(
            "const img = document.getElementById('decoded'); const c = document.createElement('canvas');"
            "c.width = img.naturalWidth; c.height = img.naturalHeight; const g = c.getContext('2d');"
            "g.drawImage(img, 0, 0); return [c.width, c.height];")
        assert pixels == [28, 28]
        # the scatter is drawn and a click shows a test image and its reconstruction
        browser.execute_script("const c = document.getElementById('scatter'); const r = c.getBoundingClientRect();"
                               "c.dispatchEvent(new MouseEvent('click', {clientX: r.left + r.width / 2,"
                               "clientY: r.top + r.height / 2, bubbles: true}));")
        wait.until(lambda b: b.execute_script("return document.getElementById('recon').src.startsWith('data:image/png')"))
        # the interpolation image follows its slider
        before = browser.execute_script("return document.getElementById('interp-img').dataset.query")
        browser.execute_script("const t = document.getElementById('t'); t.value = 0.9;"
                               "t.dispatchEvent(new Event('input', {bubbles: true}));")
        wait.until(lambda b: b.execute_script("return document.getElementById('interp-img').dataset.query") != before)
        assert browser.execute_script("return document.getElementById('status').textContent") == ""
        severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, severe
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)
