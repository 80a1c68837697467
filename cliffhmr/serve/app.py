"""The FastAPI application: the REST API under /v1 (OpenAPI at /v1/openapi.json) and the page at /.

Every error is JSON, {"error": "one line"}, with a 4xx status for what the client can fix.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import secrets
from pathlib import Path

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from .. import __version__
from ..errors import CliffError
from ..geometry.camera import Intrinsics, check_focal
from ..inference.export import json_text
from ..inference.outputs import result_arrays, summary
from ..inference.pipeline import Predictor
from ..inference.video import FrameRange
from ..perception.image import TooManyPixels, box_rows
from .jobs import Jobs, VideoInputs
from .work import Busy, Inputs, Limits, Results, TimedOut, Worker

STATIC = Path(__file__).parent / "static"
MEDIA_TYPES = {".npz": "application/octet-stream", ".json": "application/json", ".png": "image/png", ".obj": "text/plain",
               ".glb": "model/gltf-binary", ".mp4": "video/mp4", ".bvh": "text/plain"}  # fmt: skip


def page_policy(html: str) -> str:
    """The page's Content-Security-Policy: everything from this server only (three.js is vendored
    under static/), and no inline script but the page's import map, allowed by its hash."""
    import_map = re.search(r'<script type="importmap">(.*?)</script>', html, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(import_map.encode()).digest()).decode()
    return (f"default-src 'self'; script-src 'self' 'sha256-{digest}'; img-src 'self' blob: data:; "
            "connect-src 'self' blob: data:; object-src 'none'; base-uri 'none'")  # fmt: skip


def create_app(predictor: Predictor, limits: Limits = Limits(), token: str | None = None) -> FastAPI:
    """The server around one loaded `Predictor`; with `token`, every /v1 route but health asks for it."""
    results = Results(limits.keep_results)
    worker = Worker(predictor, limits, results)
    jobs = Jobs(worker, results, limits)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            yield
        finally:
            worker.close()
            results.close()

    app = FastAPI(title="cliff-hmr", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url="/v1/openapi.json", description="People in photos -> 3D body meshes (CLIFF).")  # fmt: skip
    app.add_middleware(BodyLimit, max_bytes=limits.max_upload_bytes)
    _add_error_handlers(app)
    bearer = HTTPBearer(auto_error=False, description="`--token` or CLIFFHMR_TOKEN, when the server was given one")

    def check_token(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        given = credentials.credentials if credentials else ""
        if token is not None and not secrets.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "this server needs its token: send 'Authorization: Bearer TOKEN'", headers={"WWW-Authenticate": "Bearer"})

    open_api, api = APIRouter(prefix="/v1"), APIRouter(prefix="/v1", dependencies=[Depends(check_token)])

    @open_api.get("/health", summary="Is the server up, and how full is its queue")
    def health() -> dict:
        return {"status": "ok", "version": __version__, "method": predictor.method, "body_model": predictor.body.name,
                "queue": {"admitted": worker.admitted, "capacity": worker.capacity}, "token_required": token is not None}  # fmt: skip

    @api.post("/predict", summary="People in one photo -> parameters, joints, keypoints, meshes, pictures")
    async def predict(
        file: UploadFile = File(..., description="the photo (JPEG, PNG, WebP, BMP, TIFF; told by its content, not its name)"),
        boxes: str | None = Form(None, description="JSON [[x1, y1, x2, y2, score], ...] in pixels (score optional); default: detect people"),
        keypoints: str | None = Form(None, description="JSON (N, 17, 3) COCO-17 keypoints (x, y, confidence) per person"),
        intrinsics: str | None = Form(None, description="fx,fy,cx,cy in pixels"),
        focal: float | None = Form(None, description="focal length in pixels (default: EXIF, else the image diagonal)"),
        fit_iterations: int | None = Form(None, description=f"most steps of the full-frame fit, 0 to {limits.max_fit_iterations}"),
        render: bool = Form(True, description="draw the overlay and side-view PNGs"),
        meshes: bool = Form(True, description="write the GLB and OBJ meshes"),
    ) -> Response:
        worker.check_room()
        inputs = Inputs(await file.read(), _boxes(boxes), _keypoints(keypoints), _intrinsics(intrinsics),
                        None if focal is None else check_focal(focal), _iterations(fit_iterations, limits), render, meshes)  # fmt: skip
        result_id, result, written = await worker.run(inputs)
        arrays = {k: v for k, v in result_arrays(result).items() if k not in ("vertices", "faces")}  # in the npz and meshes
        files = {p.name: f"/v1/results/{result_id}/{p.name}" for p in written}
        body = {"id": result_id, **summary(result), "arrays": arrays, "files": files}
        return Response(json_text(body, indent=None), media_type="application/json")

    @api.post("/jobs", status_code=202, summary="Queue a video: people followed and fitted smoothly; GET /v1/jobs/{id} for progress and files")
    async def submit_job(
        file: UploadFile = File(..., description="the video (MP4, MOV, WebM, MKV, AVI; told by its content, not its name)"),
        every: int = Form(1, description="process every N-th frame of those chosen"),
        start: float = Form(0.0, description="first time to process, seconds"),
        end: float | None = Form(None, description="process frames before this time, seconds (default: to the end)"),
        intrinsics: str | None = Form(None, description="fx,fy,cx,cy in pixels"),
        focal: float | None = Form(None, description="focal length in pixels (default: the frame's diagonal)"),
        fit_iterations: int | None = Form(None, description=f"most steps of each fit, 0 to {limits.max_fit_iterations}"),
        render: bool = Form(True, description="draw the overlay video"),
        meshes: bool = Form(True, description="write each track's animated GLB and BVH"),
    ) -> dict:
        worker.check_room()
        inputs = VideoInputs(await file.read(), FrameRange(every, start, end), _intrinsics(intrinsics),
                             None if focal is None else check_focal(focal), _iterations(fit_iterations, limits), render, meshes)  # fmt: skip
        job = jobs.submit(inputs)
        return {"id": job.id, "state": job.state, "url": f"/v1/jobs/{job.id}"}

    @api.get("/jobs/{job_id}", summary="A video job: its state and progress; when done, the video's summary and its files")
    def job_state(job_id: str) -> Response:
        job = jobs.get(job_id)
        if job is None:
            raise HTTPException(404, "no such job (jobs are remembered for a while, then forgotten)")
        return Response(json_text(job.view(), indent=None), media_type="application/json")

    @api.get("/results/{result_id}/{name}", summary="A file of a prediction: npz, json, overlay and side PNGs, GLB and OBJ meshes")
    def result_file(result_id: str, name: str) -> FileResponse:
        path = results.file(result_id, name)
        if path is None:
            raise HTTPException(404, "no such result file (results are kept for a while, then removed)")
        return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], filename=name)

    app.include_router(open_api)
    app.include_router(api)

    html = (STATIC / "index.html").read_text()
    policy = page_policy(html)

    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(html, headers={"Content-Security-Policy": policy})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TooManyPixels)
    async def too_many_pixels(request: Request, e: TooManyPixels):
        return _error(413, str(e))

    @app.exception_handler(CliffError)
    async def cliff_error(request: Request, e: CliffError):
        return _error(422, str(e))

    @app.exception_handler(Busy)
    async def busy(request: Request, e: Busy):
        return _error(503, str(e), {"Retry-After": str(e.retry_after)})

    @app.exception_handler(TimedOut)
    async def timed_out(request: Request, e: TimedOut):
        return _error(504, str(e))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException):
        return _error(e.status_code, str(e.detail), e.headers)

    @app.exception_handler(Exception)
    async def bug(request: Request, e: Exception):  # logged by the server with its traceback
        return _error(500, "internal error (the server's log has its traceback)")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError):
        where = "; ".join(f"{'.'.join(map(str, err['loc'][1:])) or 'request'}: {err['msg']}" for err in e.errors())
        return _error(422, f"invalid request ({where})")


class BodyLimit:
    """Refuses a request body over `max_bytes` with 413: at once when its Content-Length says so,
    else as soon as the bytes received pass it (a chunked upload), before any is kept."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        message = f"the request is larger than the server's {self.max_bytes / 2**20:g} MiB limit"
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await _error(413, message, {"Connection": "close"})(scope, receive, send)
        received = 0

        async def limited():
            nonlocal received
            event = await receive()
            received += len(event.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, message)
            return event

        await self.app(scope, limited, send)


def _json_field(name: str, text: str):
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise CliffError(f"{name}: not valid JSON") from None


def _boxes(text: str | None) -> np.ndarray | None:
    if text is None:
        return None
    return box_rows(_json_field("boxes", text), "boxes")


def _keypoints(text: str | None) -> np.ndarray | None:
    if text is None:
        return None
    try:
        return np.asarray(_json_field("keypoints", text), np.float64)
    except (TypeError, ValueError):
        raise CliffError("keypoints: expected (N, 17, 3) numbers, x, y, confidence per keypoint and person") from None


def _intrinsics(text: str | None) -> Intrinsics | None:
    if text is None:
        return None
    return Intrinsics.parse(text)


def _iterations(value: int | None, limits: Limits) -> int | None:
    if value is not None and not 0 <= value <= limits.max_fit_iterations:
        raise CliffError(f"fit_iterations: between 0 and {limits.max_fit_iterations}, got {value}")
    return value
