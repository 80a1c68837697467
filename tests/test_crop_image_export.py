import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cliffhmr.errors import CliffError
from cliffhmr.inference.export import glb_bytes, obj_text, save_npz
from cliffhmr.perception.image import boxes_for, list_images, load_boxes_file, load_image
from cliffhmr.perception import crop


# --- crop -------------------------------------------------------------------------------------

def test_box_to_center_scale_hand_computed():
    # A 100 x 300 box is taller than 3:4, so its height rules: 300 / 200 * 1.1.
    c, s = crop.box_to_center_scale(torch.tensor([[10.0, 20.0, 110.0, 320.0]]))
    assert c[0].tolist() == [60.0, 170.0]
    assert s[0].item() == pytest.approx(300 / 200 * 1.1)
    # A 300 x 100 box is wider: height = 300 * 256 / 192 = 400.
    _, s = crop.box_to_center_scale(torch.tensor([[0.0, 0.0, 300.0, 100.0]]), rescale=1.2)
    assert s[0].item() == pytest.approx(400 / 200 * 1.2)


def test_crop_image_coordinate_round_trip():
    pts = torch.rand(3, 10, 2) * 500
    c, s = torch.rand(3, 2) * 500, torch.rand(3) + 0.5
    torch.testing.assert_close(crop.crop_to_image(crop.image_to_crop(pts, c, s), c, s), pts, atol=1e-3, rtol=0)


def test_crop_samples_the_right_pixels():
    """A crop at scale 256/200 (1 image pixel per crop pixel) is an exact window of the image."""
    img = np.random.default_rng(0).integers(0, 256, (400, 300, 3), dtype=np.uint8)
    # Pixel (i, j) spans [i, i + 1): a crop centred on the corner (150, 200) between four pixels
    # has its pixel (0, 0) on image pixel (150 - 96, 200 - 128), pixel for pixel.
    center = torch.tensor([[150.0, 200.0]])
    out = crop.crop_images(img, center, torch.tensor([256 / 200]))
    assert out.shape == (1, 3, 256, 192)
    window = img[200 - 128 : 200 + 128, 150 - 96 : 150 + 96]
    np.testing.assert_allclose(out[0].permute(1, 2, 0).numpy() * 255, window, atol=0.02)  # float32 grid rounding; a half-pixel shift would be ~tens


def test_crop_of_a_flipped_and_turned_view_reads_the_photo_through_the_map():
    """`to_image` maps a view's pixels to the photo's (training crops flipped, rolled views). A
    16 x 12 crop 16 image pixels high has one image pixel per crop pixel: centred on (40, 60), its
    pixel (row i, col j) is centred on (34.5 + j, 52.5 + i), image pixel [52 + i, 34 + j]."""
    img = np.random.default_rng(1).integers(0, 256, (120, 90, 3), dtype=np.uint8)
    s, i, j = torch.tensor([16 / 200]), np.arange(16)[:, None], np.arange(12)[None, :]

    def pixels(c, to_image=None):
        return crop.crop_images(img, torch.tensor([c]), s, height=16, to_image=to_image)[0].permute(1, 2, 0).numpy() * 255

    np.testing.assert_allclose(pixels([40.0, 60.0]), img[52 + i, 34 + j], atol=0.02)
    # The mirrored photo (x -> 90 - x): view point 50.5 + j - 6 is photo x 45.5 - j, pixel 45 - j.
    mirror = np.array([[-1.0, 0.0, 90.0], [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(pixels([50.0, 60.0], mirror), img[52 + i, 45 - j], atol=0.02)
    # A quarter turn, view (x, y) -> photo (100 - y, 20 + x): view (34.5 + j, 52.5 + i) is photo
    # (47.5 - i, 54.5 + j), pixel [54 + j, 47 - i].
    turn = np.array([[0.0, -1.0, 100.0], [1.0, 0.0, 20.0]])
    np.testing.assert_allclose(pixels([40.0, 60.0], turn), img[54 + j, 47 - i], atol=0.02)


def test_smaller_crop_covers_the_same_box():
    """A 64-row crop tiles the 256-row crop's area with 4x4 blocks: on a ramp image (value = x in
    red, y in green) each pixel holds the ramp at its block's centre, computed by hand."""
    xs, ys = np.meshgrid(np.arange(250), np.arange(250))
    img = np.stack((xs, ys, np.zeros_like(xs)), -1).astype(np.uint8)
    # b = 128 px: a 256-crop pixel is 0.5 image px; 64-crop pixel (j, i) is centred on 256-crop
    # (4j + 2, 4i + 2), i.e. image x = 100.5 + (4j + 2 - 96) / 2 = 53.5 + 2j, y = 37.5 + 2i, where
    # the ramp (pixel k, centred on k + 0.5, holds k) reads 53 + 2j and 37 + 2i.
    out = crop.crop_images(img, torch.tensor([[100.5, 100.5]]), torch.tensor([128 / 200]), height=64)[0] * 255
    assert out.shape == (3, 64, 48)
    j, i = torch.meshgrid(torch.arange(48.0), torch.arange(64.0), indexing="xy")
    torch.testing.assert_close(out[0], 53 + 2 * j, atol=1e-3, rtol=0)
    torch.testing.assert_close(out[1], 37 + 2 * i, atol=1e-3, rtol=0)
    with pytest.raises(CliffError, match="multiple of 4"):
        crop.crop_width(30)


def test_crop_outside_image_is_black_and_downscale_is_smooth():
    img = np.full((100, 100, 3), 200, np.uint8)
    out = crop.crop_images(img, torch.tensor([[-500.0, -500.0]]), torch.tensor([1.0]))
    assert out.abs().max() == 0
    # A big crop (pre-shrunk by box filtering) of a flat image stays flat inside the image.
    img = np.full((2000, 2000, 3), 100, np.uint8)
    out = crop.crop_images(img, torch.tensor([[1000.0, 1000.0]]), torch.tensor([8.0]))
    np.testing.assert_allclose(out[0, :, 20:-20, 20:-20].numpy(), 100 / 255, atol=1e-5)


def test_validate_boxes():
    ok = crop.validate_boxes([[10, 10, 50, 90]], 100, 100)
    assert ok.shape == (1, 5) and ok[0, 4] == 1
    assert crop.validate_boxes([[-20, -20, 50, 90, 0.7]], 100, 100)[0, 4] == pytest.approx(0.7)  # truncated is fine
    with pytest.raises(CliffError, match="empty"):
        crop.validate_boxes([[50, 10, 40, 90]], 100, 100)
    with pytest.raises(CliffError, match="outside"):
        crop.validate_boxes([[150, 10, 200, 90]], 100, 100)
    with pytest.raises(CliffError, match="NaN"):
        crop.validate_boxes([[np.nan, 10, 40, 90]], 100, 100)
    with pytest.raises(CliffError, match="shape"):
        crop.validate_boxes([[1, 2, 3]], 100, 100)
    # Reaching beyond the image by up to twice its size is a truncated person; by 1e30, a mistake.
    assert len(crop.validate_boxes([[-199, -199, 299, 299]], 100, 100)) == 1
    for box in ([10, 10, 1e30, 90], [-201, 10, 50, 90], [10, 10, 50, 301]):
        with pytest.raises(CliffError, match="twice the 100x100 image's size"):
            crop.validate_boxes([box], 100, 100)


# --- image loading ----------------------------------------------------------------------------

def test_load_modes(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(load_image(tmp_path / "rgb.png").pixels, rgb)

    Image.fromarray(rgb[..., 0]).save(tmp_path / "grey.png")
    grey = load_image(tmp_path / "grey.png").pixels
    assert grey.shape == (20, 30, 3) and (grey[..., 0] == rgb[..., 0]).all() and (grey[..., 2] == rgb[..., 0]).all()

    rgba = np.dstack([rgb, np.zeros((20, 30), np.uint8)])  # fully transparent -> white
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    assert (load_image(tmp_path / "rgba.png").pixels == 255).all()

    deep = (np.arange(20 * 30).reshape(20, 30) * 100).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    px = load_image(tmp_path / "deep.png").pixels
    assert px.dtype == np.uint8 and px[-1, -1, 0] == round(deep.max() / 65535 * 255)


def test_exif_orientation_and_focal(tmp_path):
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :10] = 255  # white band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    exif.get_ifd(0x8769)[0xA405] = 28
    Image.fromarray(img).save(tmp_path / "r.jpg", exif=exif, quality=95)
    loaded = load_image(tmp_path / "r.jpg")
    assert loaded.pixels.shape == (40, 20, 3)  # upright
    assert loaded.pixels[:10].mean() > 200 and loaded.pixels[-10:].mean() < 50  # band now on top
    assert loaded.focal_35mm == 28


def test_absurd_exif_focal_is_ignored_with_a_warning(tmp_path, capsys):
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = 65535  # mm: a 0.04 degree field of view
    Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(tmp_path / "far.jpg", exif=exif)
    with pytest.warns(UserWarning, match="65535 mm .* implausible; ignored"):
        assert load_image(tmp_path / "far.jpg").focal_35mm is None
    # The command line shows it as one line of its own, and goes on with the default camera.
    from conftest import run

    code, io = run(["predict", tmp_path / "far.jpg", "--out", tmp_path / "out", "--no-render"], capsys)
    assert code == 0, io.err
    assert io.err.strip().splitlines() == [f"cliffhmr: warning: {tmp_path / 'far.jpg'}: EXIF 35 mm focal length 65535 mm "
                                           "(a 0.038 degree diagonal field of view) is implausible; ignored"]  # fmt: skip


def test_cameras_that_make_no_sense_are_refused(tmp_path, capsys):
    from cliffhmr.geometry.camera import Intrinsics
    from conftest import run

    for values in ((float("inf"), 1, 2, 3), (100, float("nan"), 2, 3), (100, 100, float("inf"), 3), (-5, 100, 2, 3)):
        with pytest.raises(CliffError, match="intrinsics must be finite with positive focal lengths"):
            Intrinsics(*values)
    Image.fromarray(np.zeros((60, 80, 3), np.uint8)).save(tmp_path / "p.png")
    for flag in (["--focal", "inf"], ["--intrinsics", "nan,100,40,30"], ["--intrinsics", "100,100,40,inf"]):
        code, io = run(["predict", tmp_path / "p.png", "--out", tmp_path / "out", *flag], capsys)
        assert code == 2 and len(io.err.strip().splitlines()) == 1 and "Traceback" not in io.err, io.err
    assert not (tmp_path / "out").exists()


def test_huge_declared_size_is_refused_before_decoding(tmp_path, capsys):
    import zlib

    from conftest import run

    def declared(name, w, h):
        """A valid 8x8 PNG whose header is rewritten to declare w x h pixels."""
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / name)
        data = bytearray((tmp_path / name).read_bytes())
        ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
        data[ihdr : ihdr + 8] = struct.pack(">II", w, h)
        data[ihdr + 13 : ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13])))
        (tmp_path / name).write_bytes(bytes(data))
        return tmp_path / name

    # Above our limit (PIL would only warn), and far above it (PIL's own bomb error): one line each.
    with pytest.raises(CliffError, match="12000x10000 pixels is more than the 100-megapixel limit"):
        load_image(declared("big.png", 12_000, 10_000))
    with pytest.raises(CliffError, match="bomb.png: not a readable image .*decompression bomb"):
        load_image(declared("bomb.png", 100_000, 100_000))
    # In a folder each is reported and the other images still run.
    (tmp_path / "in").mkdir()
    for name in ("big.png", "bomb.png"):
        (tmp_path / name).rename(tmp_path / "in" / name)
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "in" / "plain.png")
    code, io = run(["predict", tmp_path / "in", "--out", tmp_path / "out", "--no-render"], capsys)
    assert code == 2 and "2 of 3 images failed" in io.err and "Traceback" not in io.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["plain.json", "plain.npz"]


def test_bad_images(tmp_path):
    (tmp_path / "text.jpg").write_text("not an image")
    with pytest.raises(CliffError, match="not a readable image"):
        load_image(tmp_path / "text.jpg")
    with pytest.raises(CliffError, match="no such image"):
        load_image(tmp_path / "missing.png")
    good = np.zeros((64, 64, 3), np.uint8)
    Image.fromarray(good).save(tmp_path / "t.png")
    (tmp_path / "trunc.png").write_bytes((tmp_path / "t.png").read_bytes()[:60])
    with pytest.raises(CliffError):
        load_image(tmp_path / "trunc.png")
    with pytest.raises(CliffError, match="shape"):
        load_image(np.zeros((4, 4, 2)))


def test_list_images(tmp_path):
    with pytest.raises(CliffError):
        list_images(tmp_path)
    for name in ("b.png", "a.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.png"]


def test_boxes_file(tmp_path):
    f = tmp_path / "boxes.json"
    f.write_text(json.dumps({"a.jpg": [[1, 2, 30, 40, 0.9]], "b": [[1, 2, 30, 40]], "c.png": [], "mixed.png": [[1, 2, 3, 4], [5, 6, 7, 8, 0.5]]}))
    boxes = load_boxes_file(f)
    from pathlib import Path

    assert boxes_for(boxes, Path("x/a.jpg")).tolist() == [[1, 2, 30, 40, pytest.approx(0.9)]]
    assert boxes_for(boxes, Path("b.png")).tolist() == [[1, 2, 30, 40, 1]]
    assert boxes_for(boxes, Path("c.png")).shape == (0, 5)
    assert boxes_for(boxes, Path("d.png")) is None
    assert boxes_for(boxes, Path("mixed.png"))[:, 4].tolist() == [1, 0.5]
    f.write_text(json.dumps({"a.jpg": [[1, 2, 3]]}))
    with pytest.raises(CliffError, match="a.jpg"):
        load_boxes_file(f)
    f.write_text("{")
    with pytest.raises(CliffError, match="JSON"):
        load_boxes_file(f)


# --- export -----------------------------------------------------------------------------------

def _tetra():
    v = np.array([[0, 0, 1], [1, 0, 1], [0, 1, 1], [0, 0, 2]], np.float32)
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    return v, f


def test_obj_round_trip():
    import trimesh

    v, f = _tetra()
    import io

    mesh = trimesh.load(io.StringIO(obj_text(v, f)), file_type="obj", process=False)
    np.testing.assert_allclose(mesh.vertices, v, atol=1e-6)
    np.testing.assert_array_equal(mesh.faces, f)


def test_obj_text_is_one_line_per_vertex_and_face():
    """Against lines formatted one by one: 6 decimals, negative zero and large values as Python
    prints them, faces 1-based, a newline after every line."""
    v = np.array([[0.0, -0.0, 1e-7], [-1.25, 123456.789, -2e-6]])
    f = np.array([[0, 1, 0]])
    want = "".join(f"v {x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in v) + "f 1 2 1\n"
    assert obj_text(v, f) == want == "v 0.000000 -0.000000 0.000000\nv -1.250000 123456.789000 -0.000002\nf 1 2 1\n"


def test_obj_face_lines_follow_the_faces_they_are_given():
    """Face lines are made once per face array and reused: a second array, a changed copy of the
    first, or the first again each get their own lines (as formatted one by one)."""
    rng = np.random.default_rng(3)
    v = rng.normal(size=(5, 3))
    f = rng.integers(0, 5, (7, 3))
    g = f.copy()
    g[3, 1] = (g[3, 1] + 1) % 5

    def face_lines(text):
        return [line for line in text.splitlines() if line.startswith("f ")]

    for faces in (f, g, f, f.astype(np.int32), g[::-1]):
        assert face_lines(obj_text(v, faces)) == [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]


def test_glb_structure_and_round_trip():
    import io

    import trimesh

    v, f = _tetra()
    data = glb_bytes(v, f)
    magic, version, total = struct.unpack("<4sII", data[:12])
    assert (magic, version, total) == (b"glTF", 2, len(data)) and len(data) % 4 == 0
    scene = trimesh.load(io.BytesIO(data), file_type="glb", process=False)
    mesh = next(iter(scene.geometry.values()))
    # Written in glTF's Y-up frame: camera-frame (x, y, z) -> (x, -y, -z).
    np.testing.assert_allclose(mesh.vertices, v * [1, -1, -1], atol=1e-6)
    np.testing.assert_array_equal(mesh.faces, f)


def test_atomic_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "r.npz"
    save_npz(target, {"a": np.arange(3)})

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(RuntimeError):
        save_npz(target, {"a": np.arange(5)})
    assert np.load(target)["a"].tolist() == [0, 1, 2]  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.npz"]  # no temporary left behind


@pytest.mark.parametrize("name", ["plain", "upper.NPZ", "data.npz", "dots.v2"])
def test_npz_lands_under_the_exact_name_whatever_its_suffix(tmp_path, name):
    # numpy appends ".npz" to a path that lacks it; the writer must not publish an empty file.
    from cliffhmr.atomic import write_npz_atomic

    for compressed in (False, True):
        write_npz_atomic(tmp_path / name, {"a": np.arange(4), "b": np.eye(2)}, compressed=compressed)
        assert [p.name for p in tmp_path.iterdir()] == [name]
        with np.load(tmp_path / name) as z:
            assert z["a"].tolist() == [0, 1, 2, 3] and z["b"].tolist() == [[1, 0], [0, 1]]


def test_output_stems_are_unique():
    from cliffhmr.perception.image import output_stems

    names = ["a.jpg", "photo.jpg", "photo.png", "photo_jpg.png", "x.JPG"]
    assert output_stems([Path(n) for n in names]) == ["a", "photo_jpg", "photo_png", "photo_jpg_2", "x"]


def test_json_is_strict_whatever_the_numbers(tmp_path):
    from cliffhmr.inference.export import save_json

    data = {"q": float("nan"), "t": np.array([1.5, np.inf, -np.inf]), "n": np.float32(2.5), "k": np.int64(3),
            "p": Path("a/b.jpg"), "rows": [(1.0, float("nan"))], "ok": None}  # fmt: skip
    save_json(tmp_path / "s.json", data)

    def refuse(token):
        raise ValueError(f"non-JSON token {token}")

    back = json.loads((tmp_path / "s.json").read_text(), parse_constant=refuse)
    assert back == {"q": None, "t": [1.5, None, None], "n": 2.5, "k": 3, "p": "a/b.jpg", "rows": [[1.0, None]], "ok": None}


def test_a_killed_writers_partial_file_is_removed_by_the_next_write(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # finished, so no longer running
    orphan = tmp_path / f".r.{dead_pid}.abc123.partial.npz"
    legacy = tmp_path / ".r.k2j4x9.partial.npz"  # no pid: from before pids were written
    live = tmp_path / f".r.{os.getpid()}.def456.partial.npz"  # a write still under way
    other = tmp_path / f".rr.{dead_pid}.x.partial.npz"  # another output's
    for p in (orphan, legacy, live, other):
        p.write_bytes(b"half")
    save_npz(tmp_path / "r.npz", {"a": np.arange(2)})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["r.npz", live.name, other.name])


def test_atomic_outputs_get_ordinary_permissions(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        save_npz(tmp_path / "r.npz", {"a": np.arange(3)})
    finally:
        os.umask(umask)
    assert (tmp_path / "r.npz").stat().st_mode & 0o777 == 0o644
