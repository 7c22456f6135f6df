"""Runtime: onnxruntime-web in headless Chromium, on its WASM (CPU) or WebGPU backend.

:class:`Browser` starts, once, everything a browser run needs:

* ``npm ci`` in examples/web (onnxruntime-web from the committed package-lock.json into its
  gitignored node_modules/);
* :class:`StaticServer`, a Python http.server thread on 127.0.0.1 (never another address)
  serving examples/web, plus the model files registered with :meth:`StaticServer.publish`;
* Debian's ``chromium`` driven by Playwright (imported here, lazily: the ``browser``
  extra), with WebGPU on SwiftShader's Vulkan (a CPU implementation, so no GPU is needed);
* one page per onnxruntime-web build (:data:`BUILDS`): the package's default build, whose
  WebGPU backend is JSEP (JavaScript), and its ``/webgpu`` build, whose WebGPU backend is
  the native execution provider. They are different WebGPU implementations, and a graph
  can run exactly on one and not on the other.

Batches travel as base64 float32 bytes through ``page.evaluate``, outputs come back the
same way (bit-exact), and the page runs them with examples/web/anan_web.js, the module the
example page itself uses.

Example:
    >>> with Browser() as browser:                                  # doctest: +SKIP
    ...     probs = browser.run("model.anan.onnx", batch, "webgpu")
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import os
import shutil
import threading
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from anan_onnx.conformance._process import Closing, RuntimeUnavailable, example_dir, npm_ci
from anan_onnx.errors import AnanError
from anan_onnx.install_hint import install_hint

__all__ = ["BACKENDS", "BUILDS", "Browser", "StaticServer", "WebRuntime", "chromium_args"]

BACKENDS = ("wasm", "webgpu")
#: onnxruntime-web builds (examples/web/anan_web.js): ``default`` is dist/ort.min.mjs, what
#: ``import 'onnxruntime-web'`` gives (WASM, and WebGPU through JSEP, its JavaScript
#: implementation); ``webgpu`` is dist/ort.webgpu.min.mjs, ``import 'onnxruntime-web/webgpu'``
#: (WASM, and the native C++ WebGPU execution provider).
BUILDS = ("default", "webgpu")
PACKAGE = "onnxruntime-web"
INSTALL_CHROMIUM = "apt-get install chromium (Debian's Chromium; or set ANAN_CHROMIUM)"

#: WebGPU through SwiftShader: a Vulkan implementation on the CPU, present in Chromium.
WEBGPU_ARGS = (
    "--enable-unsafe-webgpu",
    "--use-webgpu-adapter=swiftshader",
    "--enable-features=Vulkan",
    "--use-angle=swiftshader",
)

#: The page the runs happen in: it only imports the example's module (?ort=BUILD).
HARNESS = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>anan-onnx conformance</title></head>
<body><script type="module">
const build = new URLSearchParams(location.search).get('ort') ?? 'default';
window.anan = await import('./anan_web.js?ort=' + encodeURIComponent(build));
window.ananReady = true;
</script></body></html>
"""
HARNESS_PATH = "/__anan_conformance.html"
FILES_PREFIX = "/__files/"


# --- the local web server -------------------------------------------------------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder, the harness page and the published files; logs nothing."""

    published: dict[str, Path] = {}

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        return

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path == HARNESS_PATH:
            self._send(HARNESS, "text/html")
        elif path.startswith(FILES_PREFIX) and path in self.published:
            self._send(self.published[path].read_bytes(), self.guess_type(path))
        else:
            super().do_GET()

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


class StaticServer:
    """An http.server thread on 127.0.0.1 serving ``root`` (default examples/web).

    Attributes:
        url: ``http://127.0.0.1:PORT`` (a free port).
    """

    def __init__(self, root: str | Path | None = None) -> None:
        root = Path(root) if root is not None else example_dir("web")

        class Handler(_Handler):  # this server's own table of published files
            published: dict[str, Path] = {}

        self._published = Handler.published
        self._server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def publish(self, path: str | Path, name: str | None = None) -> str:
        """Serves the file ``path`` (under its own name, or ``name``); returns its URL path.

        Each call gets its own folder, so two models may share a file name.
        """
        path = Path(path).resolve()
        if not path.is_file():
            raise AnanError(f"{path}: no such file to serve: check the path")
        quoted = urllib.parse.quote(name or path.name)
        url_path = f"{FILES_PREFIX}{len(self._published)}/{quoted}"
        self._published[url_path] = path
        return url_path

    def publish_beside(self, url_path: str, path: str | Path, name: str) -> str:
        """Serves ``path`` as ``name`` in the folder of an already published ``url_path``."""
        folder = url_path.rsplit("/", 1)[0]
        target = f"{folder}/{urllib.parse.quote(name)}"
        self._published[target] = Path(path).resolve()
        return target

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


# --- the browser ----------------------------------------------------------------------------


def chromium_executable() -> str:
    """Chromium's path ($ANAN_CHROMIUM, else chromium or chromium-browser on PATH)."""
    chosen = os.environ.get("ANAN_CHROMIUM")
    if chosen and not os.access(chosen, os.X_OK):
        raise RuntimeUnavailable(
            f"ANAN_CHROMIUM={chosen} is not an executable: unset it, or {INSTALL_CHROMIUM}"
        )
    found = chosen or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise RuntimeUnavailable(f"Chromium is not installed: {INSTALL_CHROMIUM}")
    return found


def chromium_args() -> list[str]:
    """Command-line switches: WebGPU on SwiftShader; no sandbox when running as root
    (Chromium refuses to start sandboxed as root, e.g. in containers and CI)."""
    args = list(WEBGPU_ARGS)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--no-sandbox")
    return args


class Browser(Closing):
    """A headless Chromium with the harness page loaded, plus its local server.

    Start once, run many models: ``run(model, batch, backend)``. Use as a context manager,
    or call :meth:`close`.

    Raises:
        RuntimeUnavailable: Playwright, Chromium, node/npm or onnxruntime-web is missing.
    """

    def __init__(self, extra_args: Sequence[str] = (), builds: Sequence[str] = BUILDS) -> None:
        """``extra_args``: more Chromium switches; ``builds``: the onnxruntime-web builds to
        load a page for (benchmarks/wasm_ratio.py: V8 flags, the default build only)."""
        if "default" not in builds or not set(builds) <= set(BUILDS):
            raise ValueError(f"builds must include 'default' and be of {BUILDS}, got {builds}")
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            raise RuntimeUnavailable(
                f"Playwright is not installed: {install_hint('browser')} (Playwright for Python)"
            ) from None
        executable = chromium_executable()
        npm_ci(example_dir("web"), PACKAGE)
        self.server = StaticServer()
        self._playwright = sync_playwright().start()
        try:
            self._browser = self._playwright.chromium.launch(
                executable_path=executable, args=[*chromium_args(), *extra_args], headless=True
            )
            self.version = self._browser.version
            self._pages = {build: self._harness(build) for build in builds}
        except Exception as exc:
            self.close()
            raise RuntimeUnavailable(
                f"Chromium did not start or load the page ({str(exc).splitlines()[0]}): "
                f"{INSTALL_CHROMIUM}"
            ) from None
        self.webgpu = bool(self._pages["default"].evaluate("window.anan.webgpuAvailable()"))
        self._urls: dict[Path, str] = {}

    def _harness(self, build: str) -> Any:
        page = self._browser.new_page()
        page.goto(f"{self.server.url}{HARNESS_PATH}?ort={build}")
        page.wait_for_function("window.ananReady === true", timeout=60_000)
        return page

    def url(self, model: str | Path) -> str:
        """The URL the page loads ``model`` from (published on first use)."""
        key = Path(model).resolve()
        if key not in self._urls:
            self._urls[key] = self.server.publish(key)
        return self._urls[key]

    def new_page(self, url_path: str) -> Any:
        """A new tab (a Playwright ``Page``) showing ``url_path`` of the local server."""
        page = self._browser.new_page()
        page.goto(self.server.url + url_path)
        return page

    def classify_image(
        self,
        model: str | Path,
        image: str | Path,
        backend: str = "wasm",
        *,
        build: str = "default",
        screenshot: str | Path | None = None,
    ) -> dict[str, Any]:
        """Runs the example page (examples/web/index.html) on one image file.

        Serves ``model`` with its sidecar (which must exist beside it), opens the page,
        gives it ``image`` through its file input and waits for the result. Returns the
        page's ``window.ananApp.result`` (``probs``, ``names``, ``output``, ``input``:
        base64 float32 of shape ``dims``, ``pixels``: base64 of the resized 8-bit image,
        height x width x channels, ``ms``) plus ``shown``:
        the rows displayed, as (class, text, full-precision value).

        Raises:
            AnanError: the page reported an error (its message).
        """
        from anan_onnx.sidecar import sidecar_path

        model = Path(model)
        sidecar = sidecar_path(model)
        url = self.server.publish(model)
        if sidecar.is_file():
            self.server.publish_beside(url, sidecar, sidecar.name)
        query = urllib.parse.urlencode({"model": url, "backend": backend, "ort": build})
        page = self.new_page(f"/index.html?{query}")
        try:
            page.set_viewport_size({"width": 1000, "height": 740})
            page.wait_for_function(_SETTLED.format(phases="'ready', 'error'"), timeout=120_000)
            if page.evaluate("document.body.dataset.state") != "error":
                page.set_input_files("#file", str(image))
                page.wait_for_function(_SETTLED.format(phases="'done', 'error'"), timeout=120_000)
            if page.evaluate("document.body.dataset.state") == "error":
                raise AnanError(f"the example page says: {page.evaluate('window.ananApp.error')}")
            result: dict[str, Any] = page.evaluate("window.ananApp.result")
            result["shown"] = page.eval_on_selector_all(
                "#results .row",
                "rows => rows.map(r => [r.dataset.class, "
                "r.querySelector('.value').textContent, Number(r.dataset.value)])",
            )
            if screenshot is not None:
                page.screenshot(path=str(screenshot), full_page=True)
            return result
        finally:
            page.close()

    def run(
        self, model: str | Path, batch: np.ndarray, backend: str, build: str = "default"
    ) -> np.ndarray:
        """The model's first output for ``batch`` on ``backend`` of onnxruntime-web
        ``build`` (see BUILDS), one row per image."""
        return self._evaluate(model, batch, backend, build, repeats=0)[0]

    def latency(
        self,
        model: str | Path,
        batch: np.ndarray,
        backend: str,
        repeats: int = 5,
        build: str = "default",
    ) -> list[float]:
        """Milliseconds per run, ``repeats`` samples after warm-up runs (same session).

        A sample averages as many runs as take about 20 ms (the page's clock is coarse)."""
        return self._evaluate(model, batch, backend, build, repeats)[1]

    def _evaluate(
        self, model: str | Path, batch: np.ndarray, backend: str, build: str, repeats: int
    ) -> tuple[np.ndarray, list[float]]:
        if backend not in BACKENDS:
            raise AnanError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if build not in self._pages:  # BUILDS, or those this Browser was started with
            raise AnanError(f"build must be one of {', '.join(self._pages)}, got {build!r}")
        if backend == "webgpu" and not self.webgpu:
            raise RuntimeUnavailable(
                "this Chromium offers no WebGPU adapter (SwiftShader's Vulkan): "
                f"{INSTALL_CHROMIUM}, started with {' '.join(WEBGPU_ARGS)}"
            )
        batch = np.ascontiguousarray(batch, np.float32)
        result = self._pages[build].evaluate(
            _RUN_JS,
            [
                self.url(model),
                backend,
                base64.b64encode(batch.tobytes()).decode("ascii"),
                list(batch.shape),
                repeats,
            ],
        )
        if "error" in result:
            raise AnanError(
                f"onnxruntime-web ({build} build, {backend}) failed on {Path(model).name}: "
                f"{result['error']}"
            )
        values = np.frombuffer(base64.b64decode(result["data"]), np.float32)
        return values.reshape(len(batch), -1), [float(t) for t in result["times"]]

    def close(self) -> None:
        for close in (
            getattr(getattr(self, "_browser", None), "close", None),
            getattr(getattr(self, "_playwright", None), "stop", None),
            getattr(getattr(self, "server", None), "close", None),
        ):
            if close is not None:
                # closing what is half-started or already gone: nothing left to do
                with contextlib.suppress(Exception):
                    close()


_SETTLED = "[{phases}].includes(document.body.dataset.state)"

# Errors come back as {error}: a rejected promise would lose the message's detail.
_RUN_JS = """async ([url, backend, b64, dims, repeats]) => {
  const anan = window.anan;
  let session;
  try {
    session = await anan.createSession(url, backend);
    const input = anan.base64ToFloat32(b64);
    const first = await anan.runFirstOutput(session, input, dims);
    // Timed samples of `inner` runs each: performance.now() is coarse (0.1 ms) in a page
    // that is not cross-origin isolated, so a fast model is timed over several runs.
    const times = [];
    let inner = 1;
    if (repeats > 0) {
      const start = performance.now();
      await anan.runFirstOutput(session, input, dims);
      inner = Math.min(200, Math.max(1, Math.ceil(20 / Math.max(performance.now() - start, 0.1))));
    }
    for (let i = 0; i < repeats; i++) {
      const start = performance.now();
      for (let j = 0; j < inner; j++) await anan.runFirstOutput(session, input, dims);
      times.push((performance.now() - start) / inner);
    }
    return { data: anan.float32ToBase64(first.data), dims: first.dims, times };
  } catch (e) {
    return { error: String(e && e.message || e).split('\\n')[0] };
  } finally {
    if (session) await session.release();
  }
}"""


class WebRuntime:
    """One backend of one onnxruntime-web build in a shared :class:`Browser`, with the
    runtimes' ``run`` signature: ``web-wasm``, ``web-webgpu`` (default build, JSEP) or
    ``web-webgpu-ep`` (the '/webgpu' build's native WebGPU execution provider)."""

    def __init__(self, browser: Browser, backend: str, build: str = "default") -> None:
        self.browser, self.backend, self.build = browser, backend, build
        self.name = f"web-{backend}" + ("-ep" if build == "webgpu" else "")

    def run(self, model: str | Path, batch: np.ndarray) -> np.ndarray:
        return self.browser.run(model, batch, self.backend, self.build)

    def run_images(self, model: str | Path, images: Sequence[str | Path]) -> np.ndarray:
        """The model's first output for image files given to the example page, which
        decodes and preprocesses them itself from the sidecar beside ``model``."""
        rows = [
            self.browser.classify_image(model, image, self.backend, build=self.build)["output"]
            for image in images
        ]
        return np.asarray(rows, np.float64).reshape(len(rows), -1)

    def close(self) -> None:
        """The browser is shared: its owner closes it."""
