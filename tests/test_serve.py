"""`cliffhmr serve`, started in a child process on a free loopback port and used over HTTP: the
API's answer equals `cliffhmr predict`'s files, bad uploads are refused in JSON and leave nothing
behind, a full queue answers 503, the token is asked for, and the result folders go with the server."""

from __future__ import annotations

import io
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import EXAMPLES, assert_one_line_error, child_env, load_script, run

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'cliff-hmr[serve]')")

TOKEN = "s3cret"
ITERATIONS = "60"
ASTRONAUT = (EXAMPLES / "astronaut.jpg").read_bytes()


class Server:
    """`cliffhmr serve ARGS` in a child process whose temporary folder is `tmp`."""

    def __init__(self, tmp: Path, *args: str):
        self.tmp = tmp
        env = {**child_env(), "TMPDIR": str(tmp)}
        cmd = [sys.executable, "-m", "cliffhmr", "serve", "--port", "0", "--fit-iterations", ITERATIONS, *args]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # printed once the models are loaded
        assert "serving on http://127.0.0.1:" in line, self.proc.stderr.read()
        self.url = line.split("serving on ")[1].split()[0].rstrip("/")
        self.port = int(self.url.rsplit(":", 1)[1])
        for _ in range(100):
            try:
                urllib.request.urlopen(self.url + "/v1/health", timeout=5)
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        raise AssertionError("the server never answered")

    def results_root(self) -> Path:
        (root,) = self.tmp.glob("cliffhmr-serve-*")
        return root

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(timeout=30)


def request(url: str, fields: dict | None = None, files: dict | None = None, token: str | None = TOKEN, method: str | None = None):
    """An HTTP request, multipart/form-data when there are fields or files -> (status, headers, body bytes)."""
    headers, data = {}, None
    if fields is not None or files is not None:
        boundary = uuid.uuid4().hex
        parts = []
        for name, value in (fields or {}).items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
        for name, (filename, content) in (files or {}).items():
            head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            parts.append(head.encode() + b"Content-Type: application/octet-stream\r\n\r\n" + content + b"\r\n")
        data = b"".join(parts) + f"--{boundary}--\r\n".encode()
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, headers, method=method), timeout=300) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if "torchinductor" not in str(p)}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("serve"), "--token", TOKEN, "--max-upload-mb", "2", "--max-megapixels", "20", "--queue", "1")
    yield s
    s.stop()


def test_the_answer_equals_predicts_files(server, tmp_path, capsys):
    code, io_ = run(["predict", EXAMPLES / "astronaut.jpg", "--out", tmp_path, "--fit-iterations", ITERATIONS], capsys)
    assert code == 0, io_.err
    expected = np.load(tmp_path / "astronaut.npz")
    status, headers, body = request(server.url + "/v1/predict", files={"file": ("astronaut.jpg", ASTRONAUT)})
    assert status == 200, body
    answer = json.loads(body)
    assert answer["method"] == "fit" and len(answer["people"]) == 1
    cli_json = json.loads((tmp_path / "astronaut.json").read_text())
    for key in ("camera", "width", "height", "body_model"):
        assert answer[key] == cli_json[key]
    assert answer["people"][0]["flags"] == cli_json["people"][0]["flags"]
    assert answer["people"][0]["quality"] == pytest.approx(cli_json["people"][0]["quality"], abs=1e-4)
    assert set(answer["arrays"]) == set(expected.files) - {"vertices", "faces"}
    for key, value in answer["arrays"].items():
        if key not in ("imgname", "joint_names"):
            got = np.array(value, dtype=np.float64)  # null (NaN) -> nan
            np.testing.assert_allclose(got, expected[key], atol=1e-5, rtol=0, err_msg=key)
    assert answer["arrays"]["joint_names"] == expected["joint_names"].tolist()
    assert set(answer["files"]) == {"result.npz", "result.json", "result_overlay.png", "result_side.png", "result_person0.obj", "result_person0.glb"}

    status, _, npz = request(server.url + answer["files"]["result.npz"])
    assert status == 200
    served = np.load(io.BytesIO(npz))
    for key in set(expected.files) - {"imgname"}:
        if expected[key].dtype.kind == "f":
            np.testing.assert_allclose(served[key], expected[key], atol=1e-5, rtol=0, err_msg=key)
        else:
            np.testing.assert_array_equal(served[key], expected[key], err_msg=key)
    status, headers, png = request(server.url + answer["files"]["result_overlay.png"])
    assert status == 200 and headers["Content-Type"] == "image/png" and Image.open(io.BytesIO(png)).size == (512, 512)
    status, headers, glb = request(server.url + answer["files"]["result_person0.glb"])
    assert status == 200 and glb[:4] == b"glTF" and glb == (tmp_path / "astronaut_person0.glb").read_bytes()


def bomb_png() -> bytes:
    """A 10000 x 10000 PNG (100 megapixels, 12.5 MB decoded as 1-bit, 300 MB as RGB) in a few kB."""
    out = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(out, "PNG")
    return out.getvalue()


def raw_post(port: int, head: bytes, body_chunks=()) -> tuple[int, dict]:
    """Send a request by hand (a lying or chunked body) -> (status, its JSON)."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head)
        for chunk in body_chunks:
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            reply += data
    status = int(reply.split(b" ", 2)[1])
    return status, json.loads(reply.split(b"\r\n\r\n", 1)[1])


def test_bad_uploads_are_refused_in_json_and_leave_nothing_behind(server):
    before = files_under(server.tmp)
    url = server.url + "/v1/predict"
    cases = {
        "not an image": (request(url, files={"file": ("photo.jpg", b"%PDF-1.4 not a photo" * 50)}), 422, "not a readable image"),
        "a decompression bomb": (request(url, files={"file": ("small.png", bomb_png())}), 413, "20-megapixel limit"),
        "no file": (request(url, fields={"focal": "500"}), 422, "file"),
        "a traversing name": (request(url, files={"file": ("../../../../evil.sh", b"#!/bin/sh\n")}), 422, "not a readable image"),
        "boxes not JSON": (request(url, fields={"boxes": "[[1, 2"}, files={"file": ("a.jpg", ASTRONAUT)}), 422, "boxes"),
        "a box outside": (request(url, fields={"boxes": "[[-5000, 0, 10, 10]]"}, files={"file": ("a.jpg", ASTRONAUT)}), 422, "box"),
        "too many fit steps": (request(url, fields={"fit_iterations": "99999"}, files={"file": ("a.jpg", ASTRONAUT)}), 422, "fit_iterations"),
        "half a camera": (request(url, fields={"intrinsics": "500,500"}, files={"file": ("a.jpg", ASTRONAUT)}), 422, "intrinsics"),
        "a NaN focal": (request(url, fields={"focal": "nan"}, files={"file": ("a.jpg", ASTRONAUT)}), 422, "focal"),
    }  # fmt: skip
    for what, ((status, headers, body), expected, text) in cases.items():
        assert status == expected, (what, body)
        assert headers["Content-Type"] == "application/json" and text in json.loads(body)["error"], (what, body)
    head = f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n".encode()
    # Refused on its declared length, before the body: curl asks first (Expect: 100-continue) and
    # sends nothing more; a client that sends the body regardless may see the connection reset.
    for expect in (b"", b"Expect: 100-continue\r\n"):
        status, answer = raw_post(server.port, head + expect + b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 3145728\r\n\r\n")
        assert status == 413 and "2 MiB limit" in answer["error"]
    chunked = head + b"Content-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n"
    part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
    status, answer = raw_post(server.port, chunked, [part, *[b"x" * 65536] * 40])  # 2.5 MiB, no length declared
    assert status == 413 and "limit" in answer["error"]
    assert files_under(server.tmp) == before
    assert not list(Path("/").glob("evil.sh"))


def test_file_names_from_the_client_never_reach_the_disk(server):
    status, _, body = request(server.url + "/v1/predict", fields={"render": "false"}, files={"file": ("../../x/../../owned.jpg", ASTRONAUT)})
    assert status == 200, body
    answer = json.loads(body)
    folder = server.results_root() / answer["id"]
    assert sorted(p.name for p in folder.iterdir()) == ["result.json", "result.npz", "result_person0.glb", "result_person0.obj"]
    assert not any("owned" in p.name for p in server.tmp.rglob("*"))
    (server.tmp / "result.npz").write_bytes(b"not the server's")  # beside the results folder: /v1/results/../result.npz
    for path in ("/v1/results/%2e%2e/result.npz", f"/v1/results/{answer['id']}/..%2f..%2fetc%2fpasswd", f"/v1/results/{answer['id']}/result.npz%00.png",
                 "/v1/results/..%2f..%2f/result.npz", f"/v1/results/{answer['id'].upper()}/result.npz"):  # fmt: skip
        status, headers, body = request(server.url + path)
        assert status == 404 and "error" in json.loads(body), path


def test_the_token_is_asked_for_on_v1_but_health(server):
    for token in (None, "wrong", TOKEN + "x"):
        status, headers, body = request(server.url + "/v1/predict", files={"file": ("a.jpg", ASTRONAUT)}, token=token)
        assert status == 401 and headers["WWW-Authenticate"] == "Bearer" and "token" in json.loads(body)["error"]
        assert request(server.url + "/v1/results/" + "0" * 32 + "/result.npz", token=token)[0] == 401
    status, _, body = request(server.url + "/v1/health", token=None)
    assert status == 200 and json.loads(body)["token_required"] is True
    status, _, body = request(server.url + "/v1/openapi.json", token=None)
    assert status == 200 and "/v1/predict" in json.loads(body)["paths"]


def test_a_full_queue_answers_503_with_retry_after(server):
    answers = []

    def post():
        answers.append(request(server.url + "/v1/predict", fields={"render": "false", "meshes": "false"}, files={"file": ("a.jpg", ASTRONAUT)}))

    threads = [threading.Thread(target=post) for _ in range(4)]  # the server admits 2: one running, one waiting (--queue 1)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(status for status, _, _ in answers) == [200, 200, 503, 503], [a[2][:200] for a in answers]
    for status, headers, body in answers:
        if status == 503:
            assert int(headers["Retry-After"]) >= 1 and "busy" in json.loads(body)["error"]
    health = json.loads(request(server.url + "/v1/health")[2])
    assert health["queue"] == {"admitted": 0, "capacity": 2}


def test_a_timeout_answers_504_drops_the_files_and_stopping_removes_the_folder(tmp_path, astronaut_clip):
    server = Server(tmp_path, "--timeout", "0.2", "--max-frames", "3")
    try:
        root = server.results_root()
        status, _, body = request(server.url + "/v1/predict", files={"file": ("a.jpg", ASTRONAUT)}, token=None)
        assert status == 504 and "timeout" in json.loads(body)["error"]
        for _ in range(600):  # the prediction runs on, and its files are dropped when it ends
            if json.loads(request(server.url + "/v1/health")[2])["queue"]["admitted"] == 0:
                break
            time.sleep(0.1)
        assert list(root.iterdir()) == []
        status, _, body = request(server.url + "/v1/jobs", files={"file": ("clip.mp4", astronaut_clip[1].read_bytes())}, token=None)
        state = wait_for_job(server, json.loads(body)["url"])  # a job is not held to the timeout, but to the frame limit
        assert (state["state"], state["status"], state["progress"]["frames_read"]) == ("failed", 422, 3) and "3 frames" in state["error"]
        assert list(root.iterdir()) == []
    finally:
        code = server.stop()
    assert code in (0, -signal.SIGTERM) and not root.exists()  # uvicorn shuts down, then dies of the signal it caught


def test_a_busy_port_and_a_missing_extra_are_one_line(capsys, monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        code, io_ = run(["serve", "--port", taken.getsockname()[1]], capsys)
        assert_one_line_error(code, io_.err, "cannot serve on 127.0.0.1:")
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    code, io_ = run(["serve"], capsys)
    assert_one_line_error(code, io_.err, "pip install 'cliff-hmr[serve]'", "uvicorn")


def test_serving_beyond_loopback_warns(capsys):
    from cliffhmr.errors import CliffError
    from cliffhmr.serve.command import serve
    from cliffhmr.serve.work import Limits

    def no_models():
        raise CliffError("stop before loading")

    with pytest.raises(CliffError, match="stop before loading"):
        serve(no_models, "0.0.0.0", 0, Limits(), None)
    assert "not the loopback address" in capsys.readouterr().err


def test_help_does_not_import_the_server():
    code = "import sys, cliffhmr.cli as c; c.build_parser(); print(sorted(m for m in ('fastapi', 'uvicorn', 'torch') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr


def wait_for_job(server, url: str) -> dict:
    for _ in range(3000):
        state = json.loads(request(server.url + url)[2])
        if state["state"] in ("done", "failed"):
            return state
        time.sleep(0.1)
    raise AssertionError(f"the job never ended: {state}")


def test_a_video_job_tells_its_progress_and_equals_predicts_files(server, astronaut_clip):
    frames, clip, out, _ = astronaut_clip  # `cliffhmr predict clip.mp4 --fit-iterations 60`
    status, _, body = request(server.url + "/v1/jobs", files={"file": ("clip.mp4", clip.read_bytes())})
    assert status == 202, body
    state = wait_for_job(server, json.loads(body)["url"])
    assert state["state"] == "done", state
    assert state["progress"]["frames_read"] == state["frames_processed"] == len(frames) and state["video"] == "upload"
    assert sorted(state["files"]) == sorted(p.name.replace("clip", "result") for p in out.iterdir() if p.name.startswith("clip"))
    assert sorted(p.name for p in (server.results_root() / state["id"]).iterdir()) == sorted(state["files"])  # the upload is gone
    expected = np.load(out / "clip.npz")
    served = np.load(io.BytesIO(request(server.url + state["files"]["result.npz"])[2]))
    for key in set(expected.files) - {"imgname"}:
        np.testing.assert_allclose(served[key], expected[key], atol=1e-5, rtol=0, err_msg=key) if expected[key].dtype.kind == "f" else \
            np.testing.assert_array_equal(served[key], expected[key], err_msg=key)  # fmt: skip

    before = files_under(server.tmp)
    status, _, body = request(server.url + "/v1/jobs", files={"file": ("clip.mp4", b"\x00\x00\x00\x18ftypmp42 cut off")})
    state = wait_for_job(server, json.loads(body)["url"])
    assert (state["state"], state["status"]) == ("failed", 422) and "upload" in state["error"], state
    status, _, body = request(server.url + "/v1/jobs", fields={"every": "0"}, files={"file": ("clip.mp4", clip.read_bytes())})
    assert status == 422 and "every" in json.loads(body)["error"]
    assert files_under(server.tmp) == before
    assert request(server.url + "/v1/jobs/" + "0" * 32)[0] == 404


def test_the_load_benchmark_counts_refusals_above_the_queue(tmp_path):
    bench = load_script(Path(__file__).parents[1] / "benchmarks" / "serve_load.py")
    args = ["--clients", "1,3", "--requests", "1", "--queue", "0", "--server-args", "--fit-iterations 20", "--out", str(tmp_path / "load")]
    assert bench.main(args) == 0
    one, three = json.loads((tmp_path / "load.json").read_text())["levels"]
    assert (one["ok"], one["refused"], one["failed"]) == (1, 0, 0) and one["p50_s"] > 0
    assert three["ok"] >= 1 and three["refused"] >= 1 and three["ok"] + three["refused"] == 3  # one place: the others refused
    assert "| 3 | 3 |" in (tmp_path / "load.md").read_text()
