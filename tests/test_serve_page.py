"""The page of `cliffhmr serve` in headless Chromium (Debian's `chromium`; `make test` installs it
where apt can), driven over the DevTools protocol on a pipe: a photo dropped on the page comes
back as pictures, downloads and meshes in the 3D viewer, and nothing is fetched from elsewhere."""

from __future__ import annotations

import base64
import fcntl
import io
import json
import os
import select
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import EXAMPLES
from test_serve import Server
from test_review import CHROMIUM

BACKGROUND = np.array([0x20, 0x24, 0x2A])  # page.js's viewer background


class Browser:
    """Headless Chromium with --remote-debugging-pipe: DevTools messages, JSON ending in a NUL
    byte, read from its fd 3 and written to its fd 4."""

    def __init__(self, profile: Path):
        if not Path(CHROMIUM).exists():
            pytest.skip("headless Chromium not installed (Debian: apt-get install chromium; `make test` tries it)")
        commands, self._to = os.pipe()
        self._from, replies = os.pipe()
        # Moved above 4, so that placing them at 3 and 4 in the child cannot overwrite one with the other.
        commands, replies = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (commands, replies))

        def place():
            os.dup2(commands, 3)
            os.dup2(replies, 4)

        flags = ["--headless", "--no-sandbox", "--remote-debugging-pipe", "--enable-unsafe-swiftshader", "--use-angle=swiftshader",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
                 "--window-size=1200,1600", "about:blank"]  # fmt: skip
        self.proc = subprocess.Popen([CHROMIUM, *flags], preexec_fn=place, pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(commands)
        os.close(replies)
        self._next, self._buffer, self.events = 0, b"", []

    def call(self, method: str, session: str | None = None, timeout: float = 60, **params):
        self._next += 1
        message = {"id": self._next, "method": method, "params": params, **({"sessionId": session} if session else {})}
        os.write(self._to, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" not in self._buffer:
                if not select.select([self._from], [], [], max(0.0, deadline - time.monotonic()))[0]:
                    raise TimeoutError(f"no answer to {method} in {timeout} s")
                chunk = os.read(self._from, 1 << 20)
                assert chunk, "Chromium closed its DevTools pipe"
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._next:
                assert "error" not in reply, (method, reply["error"])
                return reply["result"]
            self.events.append(reply)

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        os.close(self._to)
        os.close(self._from)


def evaluate(browser: Browser, session: str, expression: str, timeout: float = 60):
    result = browser.call("Runtime.evaluate", session, timeout, expression=expression, awaitPromise=True, returnByValue=True)
    assert "exceptionDetails" not in result, result["exceptionDetails"]
    return result["result"].get("value")


def wait_for(browser: Browser, session: str, expression: str, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = evaluate(browser, session, expression)
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"waited {timeout} s for {expression}")


DROP = """(async () => {
  const bytes = Uint8Array.from(atob('%s'), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], 'astronaut.jpg', { type: 'image/jpeg' }));
  document.getElementById('drop').dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
})()"""


def test_a_dropped_photo_shows_its_meshes_in_the_viewer(tmp_path):
    browser = Browser(tmp_path / "profile")
    server = Server(tmp_path / "server")
    try:
        session = browser.call("Target.attachToTarget", targetId=browser.call("Target.createTarget", url="about:blank")["targetId"],
                               flatten=True)["sessionId"]  # fmt: skip
        browser.call("Network.enable", session)
        browser.call("Page.navigate", session, url=server.url + "/")
        wait_for(browser, session, "document.readyState === 'complete'", 60)
        if not evaluate(browser, session, "!!document.createElement('canvas').getContext('webgl2')"):
            pytest.skip("this Chromium draws no WebGL (the page shows pictures and downloads without its 3D viewer)")
        wait_for(browser, session, "document.querySelector('#viewer canvas') !== null", 60)  # the modules ran
        evaluate(browser, session, DROP % base64.b64encode((EXAMPLES / "astronaut.jpg").read_bytes()).decode())
        state = wait_for(browser, session, "['ready', 'error'].includes(document.body.dataset.state) && document.body.dataset.state", 300)
        status = evaluate(browser, session, "document.getElementById('status').textContent")
        assert state == "ready" and "1 person (fit, anny)" in status, status
        evaluate(browser, session, "new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
        page = base64.b64decode(browser.call("Page.captureScreenshot", session, format="png", captureBeyondViewport=True)["data"])
        (tmp_path / "serve_page.png").write_bytes(page)
        print(f"screenshot: {tmp_path / 'serve_page.png'}")

        box = evaluate(browser, session, "(() => { const r = document.querySelector('#viewer canvas').getBoundingClientRect(); "
                                         "return [r.x, r.y, r.width, r.height]; })()")  # fmt: skip
        clip = dict(zip(("x", "y", "width", "height"), box), scale=1)
        canvas = np.asarray(Image.open(io.BytesIO(base64.b64decode(browser.call("Page.captureScreenshot", session, format="png", clip=clip)["data"]))).convert("RGB"))  # fmt: skip
        body = np.abs(canvas.astype(int) - BACKGROUND).max(axis=2) > 40
        assert 0.02 < body.mean() < 0.7, f"{body.mean():.3f} of the viewer's pixels differ from its background"
        ys, xs = np.nonzero(body)  # the mesh is framed: its pixels around the middle
        assert abs(xs.mean() / canvas.shape[1] - 0.5) < 0.2 and abs(ys.mean() / canvas.shape[0] - 0.5) < 0.2

        assert evaluate(browser, session, "document.getElementById('overlay').naturalWidth") == 512
        links = evaluate(browser, session, "[...document.querySelectorAll('#downloads a')].map((a) => a.download)")
        assert {"result.npz", "result.json", "result_person0.glb"} <= set(links)
        urls = [e["params"]["request"]["url"] for e in browser.events if e.get("method") == "Network.requestWillBeSent"]
        assert urls and all(u.startswith((server.url + "/", "blob:", "data:")) for u in urls), urls
        assert any(u.endswith("three.module.js") for u in urls)
    finally:
        browser.close()
        server.stop()
