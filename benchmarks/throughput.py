"""People per second on the CLIFF network path: the official demo's loop against `predict_many`,
on the same weights, photos and boxes, interleaved round by round (this machine is shared).

    .venv/bin/python benchmarks/throughput.py --backbones res50 --images 16 --rounds 3
    .venv/bin/python benchmarks/throughput.py --backbones hr48 --images 2 --rounds 3

Each image is a 1920x1080 JPEG (the bundled two_people.jpg, scaled) with `--people` boxes of
300-900 pixels. The methods, end to end from the JPEG files to posed bodies, without files:
  official  the official demo as coded (demo.py + MocapDataset): every image decoded first, then
            each person cropped alone (box region copied into a zero-padded array and resized,
            as its `crop` does with OpenCV; PIL's bilinear resize stands in, OpenCV not being a
            dependency), then network, camera and body model on batches of up to 32 people;
  strict    the same crops, one person at a time through network and body model;
  engine-B  `Predictor.predict_many` with B people per network batch.
`files` is engine-8 writing what `cliffhmr predict` writes (overlay and side-view PNGs, an OBJ
and a GLB per person, npz, JSON) in a second thread while the next images are predicted, as
`predict` does; `files-inline` writes them in turn. Compare both with engine-8 (no files).
With --bf16, `engine-8-bf16` is engine-8 with the network in bfloat16 (`--precision bf16`).
The body model is a stand-in with SMPL's sizes (6,890 vertices, 13,776 faces, 24 joints, 207 pose
directions; an ellipsoid of a person's size, rigidly skinned), as SMPL itself cannot be bundled:
same arithmetic, same rendering load. Weights are random (the same for every method). Peak memory
is measured in a child process per method (its maximum resident set size).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # this tree's cliffhmr, also when another checkout is pip-installed
    sys.path.insert(0, str(ROOT))

from cliffhmr.body.smpl import SMPLModel  # noqa: E402
from cliffhmr.geometry import camera  # noqa: E402
from cliffhmr.inference.engine import EngineConfig, InOrder  # noqa: E402
from cliffhmr.inference.outputs import write_outputs  # noqa: E402
from cliffhmr.inference.pipeline import Predictor, PredictorConfig, Request  # noqa: E402
from cliffhmr.models import CLIFF, save_checkpoint  # noqa: E402
from cliffhmr.perception import crop  # noqa: E402
from cliffhmr.perception.image import load_image  # noqa: E402

OFFICIAL_BATCH = 32  # the official demo's default --batch_size


def stand_in_smpl(n_lat: int = 82, n_lon: int = 84) -> dict[str, np.ndarray]:
    """SMPL-format arrays of SMPL's sizes: 2 + 82 * 84 = 6,890 vertices, 2 * 82 * 84 = 13,776 faces."""
    rng = np.random.default_rng(0)
    lat = np.linspace(0, np.pi, n_lat + 2)[1:-1]
    lon = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    ring = np.stack([np.outer(np.sin(lat), np.cos(lon)), np.outer(np.cos(lat), np.ones(n_lon)), np.outer(np.sin(lat), np.sin(lon))], -1)
    unit = np.concatenate([[[0, 1, 0]], ring.reshape(-1, 3), [[0, -1, 0]]])
    verts = unit * [0.22, 0.85, 0.14]  # a person's width, height and depth (half-axes, metres)
    idx = 1 + np.arange(n_lat * n_lon).reshape(n_lat, n_lon)
    nxt = np.roll(idx, -1, axis=1)
    faces = [np.stack([idx[:-1], idx[1:], nxt[:-1]], -1), np.stack([nxt[:-1], idx[1:], nxt[1:]], -1)]
    faces = np.concatenate([f.reshape(-1, 3) for f in faces]
                           + [np.stack([np.zeros(n_lon, int), nxt[0], idx[0]], -1), np.stack([np.full(n_lon, len(unit) - 1), idx[-1], nxt[-1]], -1)])  # fmt: skip
    V, J = len(verts), 24
    weights = np.zeros((V, J))
    weights[:, 0] = 1.0
    regressor = rng.random((J, V))
    parents = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
    return {
        "v_template": verts, "shapedirs": rng.normal(0, 1e-3, (V, 3, 10)), "posedirs": rng.normal(0, 1e-4, (V, 3, 207)),
        "J_regressor": regressor / regressor.sum(1, keepdims=True), "weights": weights,
        "kintree_table": np.array([[2**32 - 1, *parents[1:]], list(range(J))], np.int64), "f": faces.astype(np.int64),
    }  # fmt: skip


def scene(folder: Path, images: int, people: int) -> list[tuple[Path, np.ndarray]]:
    """JPEG files and their person boxes (x1, y1, x2, y2)."""
    photo = Image.open(ROOT / "examples" / "two_people.jpg").convert("RGB").resize((1920, 1080))
    rng = np.random.default_rng(1)
    out = []
    for i in range(images):
        path = folder / f"frame{i:03d}.jpg"
        photo.transpose(Image.FLIP_LEFT_RIGHT if i % 2 else Image.ROTATE_180).save(path, quality=90)
        h = rng.uniform(300, 900, people)
        w = h * rng.uniform(0.3, 0.6, people)
        x = rng.uniform(0.0, 1.0, people) * 1920 - w / 2  # some across the image's edges
        y = rng.uniform(0, 1.0, people) * (1080 - h / 2)
        out.append((path, np.stack([x, y, x + w, y + h], 1).astype(np.float32)))
    return out


def official_crop(pixels: np.ndarray, center: np.ndarray, b: float, height: int) -> torch.Tensor:
    """The official `crop`: the box region copied into a zero-padded array, then resized to the crop."""
    w = b * crop.CROP_WIDTH / crop.CROP_HEIGHT
    x0, y0 = int(round(center[0] - w / 2)), int(round(center[1] - b / 2))
    x1, y1 = x0 + max(int(round(w)), 1), y0 + max(int(round(b)), 1)
    region = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
    H, W = pixels.shape[:2]
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
    if sx1 > sx0 and sy1 > sy0:
        region[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = pixels[sy0:sy1, sx0:sx1]
    resized = np.array(Image.fromarray(region).resize((crop.crop_width(height), height), Image.BILINEAR))
    return crop.normalize(torch.from_numpy(resized).permute(2, 0, 1).float()[None] / 255.0)[0]


def run_reference(files, net, body, bbox_style: str, batch: int, timer: dict) -> int:
    """The official loop (batch = 32) or the strict one-person loop (batch = 1) -> people done."""
    tick = time.perf_counter()
    decoded = [load_image(path).pixels for path, _ in files]
    timer["decode"] = timer.get("decode", 0) + time.perf_counter() - tick
    tick = time.perf_counter()
    items = []  # (crop, center, b, focal, principal), the MocapDataset's items
    for pixels, (_, boxes) in zip(decoded, files):
        K = camera.Intrinsics.default(pixels.shape[1], pixels.shape[0])
        center, scale = crop.box_to_center_scale(torch.as_tensor(boxes))
        for c, s in zip(center, scale):
            items.append((official_crop(pixels, c.numpy(), float(200 * s), net.crop_height), c, 200 * s, K.focal, torch.tensor([K.cx, K.cy])))
    timer["crop"] = timer.get("crop", 0) + time.perf_counter() - tick
    for start in range(0, len(items), batch):
        part = items[start:start + batch]
        crops = torch.stack([p[0] for p in part])
        center, b = torch.stack([p[1] for p in part]), torch.stack([p[2] for p in part])
        focal, principal = torch.tensor([p[3] for p in part]), torch.stack([p[4] for p in part])
        tick = time.perf_counter()
        with torch.no_grad():
            out = net(crops, camera.bbox_info(center, b, focal, principal, style=bbox_style))
        timer["network"] = timer.get("network", 0) + time.perf_counter() - tick
        tick = time.perf_counter()
        with torch.no_grad():
            body(out.rotmat, out.betas, camera.cam_crop_to_full(out.cam, center, b, focal, principal))
        timer["body model"] = timer.get("body model", 0) + time.perf_counter() - tick
    return len(items)


def run_engine(files, predictor: Predictor, timer: dict, out: Path | None = None, background: bool = True) -> int:
    """predict_many over the photos; with `out`, each image's files written as `cliffhmr predict`
    writes them (background: in a second thread, while the next images are predicted)."""
    people = 0
    with InOrder(depth=2 if out is not None and background else 0) as writes:
        def count(result):
            for k, v in result.timings.items():
                timer[k] = timer.get(k, 0) + v
            return len(result.people)

        for _, result in predictor.predict_many(Request(path, boxes=boxes) for path, boxes in files):
            if isinstance(result, Exception):
                raise result
            if out is None:
                people += count(result)
                continue
            for done, _ in writes.submit(result, write_outputs, result, out, result.image.path.stem):
                people += count(done)
        for done, _ in writes.drain():
            people += count(done)
    return people


def prepare(tmp: Path, backbone: str, images: int, people: int):
    """Write the checkpoint, the SMPL-sized body and the photos -> the photos and their boxes."""
    torch.manual_seed(0)
    save_checkpoint(tmp / f"{backbone}.pt", CLIFF(backbone), bbox_info="official")
    np.savez(tmp / "smpl_sized.npz", **stand_in_smpl())
    return scene(tmp, images, people)


def official_model(tmp: Path, backbone: str) -> CLIFF:
    """Loaded as the official demo loads it: build the network, read the state dict, copy it in."""
    model = CLIFF(backbone)
    model.load_state_dict(torch.load(tmp / f"{backbone}.pt", weights_only=True)["model"])
    return model.eval()


def predictor_for(tmp: Path, backbone: str, batch: int, precision: str = "auto") -> Predictor:
    return Predictor(PredictorConfig(checkpoint=str(tmp / f"{backbone}.pt"), body_model=str(tmp / "smpl_sized.npz"),
                                     engine=EngineConfig(batch_size=batch, precision=precision)))  # fmt: skip


def method(tmp: Path, backbone: str, name: str):
    """name -> fn(files, stage seconds) -> people done."""
    if name in ("official", "strict"):
        model, body = official_model(tmp, backbone), SMPLModel.from_file(tmp / "smpl_sized.npz")  # the file the engine's predictor loads
        batch = OFFICIAL_BATCH if name == "official" else 1
        return lambda files, t: run_reference(files, model, body, "official", batch, t)
    writes = name.startswith("files")
    precision = "bf16" if name.endswith("-bf16") else "auto"
    predictor = predictor_for(tmp, backbone, 8 if writes else int(name.split("-")[1]), precision)
    out = Path(tempfile.mkdtemp(dir=tmp)) if writes else None
    return lambda files, t: run_engine(files, predictor, t, out, background=name != "files-inline")


def peak_memory(tmp: Path, backbone: str, name: str, images: int, people: int) -> float:
    """MiB: a child process runs one method once on the first `images` photos."""
    code = subprocess.run([sys.executable, __file__, "--child", name, "--workdir", str(tmp), "--backbones", backbone,
                           "--images", str(images), "--people", str(people)], capture_output=True, text=True)  # fmt: skip
    if code.returncode != 0:
        raise RuntimeError(code.stderr[-2000:])
    return float(code.stdout.split()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backbones", default="res50")
    p.add_argument("--images", type=int, default=16)
    p.add_argument("--people", type=int, default=8)
    p.add_argument("--batches", default="1,8,64")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--no-files", action="store_true", help="skip the engine-with-files column")
    p.add_argument("--bf16", action="store_true", help="also engine-8 with the network in bfloat16 (--precision bf16)")
    p.add_argument("--json")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    batches = [int(b) for b in a.batches.split(",")]
    if a.child:
        files = scene(Path(a.workdir), a.images, a.people)
        method(Path(a.workdir), a.backbones, a.child)(files, {})
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent through exec.
        print(next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024)
        return 0
    rows, report = [], {"device": "cpu", "threads": torch.get_num_threads(), "images": a.images, "people_per_image": a.people}
    for backbone in a.backbones.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            files = prepare(tmp, backbone, a.images, a.people)
            names = ["official", "strict", *(f"engine-{b}" for b in batches), *([] if a.no_files else ["files", "files-inline"]),
                     *(["engine-8-bf16"] if a.bf16 else [])]
            table = {name: method(tmp, backbone, name) for name in names}
            table[names[2]](files[:1], {})  # warm-up: first calls allocate
            seconds, stages, people = {k: [] for k in table}, {k: {} for k in table}, {}
            for _ in range(a.rounds):
                for name, fn in table.items():
                    tick = time.perf_counter()
                    people[name] = fn(files, stages[name])
                    seconds[name].append(time.perf_counter() - tick)
            ref = np.median(seconds["official"])
            for name in table:
                med = float(np.median(seconds[name]))
                split = {k: v / a.rounds for k, v in stages[name].items()}
                mem = peak_memory(tmp, backbone, name, min(a.images, 2), a.people) if name in ("official", "engine-8") else None
                rows.append({"backbone": backbone, "method": name, "people": people[name], "seconds": med,
                             "people_per_s": people[name] / med, "vs_official": ref / med, "peak_mib": mem, "stages": split})  # fmt: skip
    report["rows"] = rows
    print("| network | method | people | people/s | vs official | peak memory (MiB) | where the time goes (s per run) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        mem = f"{r['peak_mib']:.0f}" if r["peak_mib"] else ""
        where = ", ".join(f"{k} {v:.2f}" for k, v in r["stages"].items())
        print(f"| {r['backbone']} | {r['method']} | {r['people']} | {r['people_per_s']:.1f} | {r['vs_official']:.2f}x | {mem} | {where} |")
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
