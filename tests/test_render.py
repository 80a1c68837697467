"""Tests for the software renderer, against expectations worked out by hand or by a
naive per-triangle reference. Pixel (row j, col i) covers [i, i + 1) x [j, j + 1), its centre at
(u, v) = (i + 0.5, j + 0.5), as everywhere in the package."""

import numpy as np
import pytest
import torch

from cliffhmr.inference import render
from cliffhmr.inference.render import rasterize, rasterize_meshes, render_overlay, render_side_view
from cliffhmr.inference.shading import PALETTE

QUAD_FACES = np.array([[0, 1, 2], [0, 2, 3]])


@pytest.fixture(autouse=True)
def software(monkeypatch):
    """These tests hold the software rasteriser to exact pixels; `test_render_gl` compares OpenGL's."""
    monkeypatch.setenv("CLIFFHMR_RENDERER", "software")


def quad(x0, x1, y0, y1, z):
    """Screen-aligned rectangle [x0, x1] x [y0, y1] at depth z, as two triangles (QUAD_FACES)."""
    return np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], dtype=np.float64)


def uv_sphere(n_lat=12, n_lon=16, radius=1.0, centre=(0.0, 0.0, 0.0)):
    """Closed sphere, outward-facing triangles: verts (V, 3), faces (F, 3)."""
    th = np.linspace(0, np.pi, n_lat + 1)[1:-1]
    ph = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    ring = np.stack(
        [np.sin(th)[:, None] * np.cos(ph), np.cos(th)[:, None] * np.ones_like(ph), np.sin(th)[:, None] * np.sin(ph)],
        -1,
    ).reshape(-1, 3)
    verts = np.concatenate([[[0, 1, 0]], ring, [[0, -1, 0]]]) * radius + np.asarray(centre)
    idx = lambda i, j: 1 + i * n_lon + j % n_lon  # noqa: E731
    faces = [[0, idx(0, j + 1), idx(0, j)] for j in range(n_lon)]
    for i in range(n_lat - 2):
        for j in range(n_lon):
            a, b, c, d = idx(i, j), idx(i, j + 1), idx(i + 1, j), idx(i + 1, j + 1)
            faces += [[a, b, d], [a, d, c]]
    last = len(verts) - 1
    faces += [[last, idx(n_lat - 2, j), idx(n_lat - 2, j + 1)] for j in range(n_lon)]
    return verts, np.array(faces)


def box(size, centre):
    """Axis-aligned box: verts (8, 3), faces (12, 3)."""
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
    faces = np.array(
        [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
         [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]]
    )  # fmt: skip
    return corners * np.asarray(size) + np.asarray(centre), faces


def pixel_set(mask):
    return {(int(r), int(c)) for r, c in zip(*np.nonzero(mask))}


# ---------------------------------------------------------------- coverage and fill rule


def test_square_covers_hand_computed_pixels_at_its_depth():
    # u = 100*X/2 + 20.8 spans [5.8, 45.8]: centres 6.5 .. 45.5, columns 6..45; v = 50*Y + 16.1 spans
    # [6.1, 33.6]: rows 6..33.
    verts = quad(-0.3, 0.5, -0.2, 0.35, 2.0)
    depth, face = rasterize(verts, QUAD_FACES, 40, 48, 100.0, 100.0, 20.8, 16.1)
    expected = np.zeros((40, 48), bool)
    expected[6:34, 6:46] = True
    np.testing.assert_array_equal(face >= 0, expected)
    np.testing.assert_array_equal(depth[expected], 2.0)
    assert np.isinf(depth[~expected]).all()
    assert set(np.unique(face[expected])) == {0, 1}
    # Each triangle on its own: disjoint, and together exactly the square (no crack on the diagonal).
    m0 = rasterize(verts, QUAD_FACES[:1], 40, 48, 100.0, 100.0, 20.8, 16.1)[1] >= 0
    m1 = rasterize(verts, QUAD_FACES[1:], 40, 48, 100.0, 100.0, 20.8, 16.1)[1] >= 0
    assert not (m0 & m1).any()
    np.testing.assert_array_equal(m0 | m1, expected)


@pytest.mark.parametrize("faces", [QUAD_FACES, QUAD_FACES[:, ::-1], np.array([[0, 1, 3], [1, 2, 3]])])
def test_edges_through_pixel_centres_follow_top_left_rule(faces):
    # Dyadic numbers, so the projection is exact: u = 32*X + 16.5 spans [12.5, 24.5], v = 32*Y + 16.5
    # spans [8.5, 20.5], and the diagonal runs through pixel centres. Top and left edges are in,
    # bottom and right out.
    verts = quad(-0.125, 0.25, -0.25, 0.125, 2.0)
    masks = [rasterize(verts, faces[k : k + 1], 32, 32, 64.0, 64.0, 16.5, 16.5)[1] >= 0 for k in range(2)]
    expected = np.zeros((32, 32), bool)
    expected[8:20, 12:24] = True
    assert not (masks[0] & masks[1]).any()
    np.testing.assert_array_equal(masks[0] | masks[1], expected)


@pytest.mark.parametrize("fx, z, c", [(1.0, 1.0, 0.0), (7.3, 1.7, 0.1)])
def test_triangle_mesh_covers_each_pixel_exactly_once(fx, z, c):
    # A grid mesh whose interior vertices are jittered on a half-pixel lattice (never enough to
    # fold it), so many edges and vertices pass through pixel centres. With fx = z = 1, c = 0 the
    # projection is exact; otherwise rounding puts centres a hair to either side of an edge, and
    # the two triangles sharing it must still agree on which side.
    rng = np.random.default_rng(0)
    n, step = 6, 4.0
    uv = np.stack(np.meshgrid(np.arange(n + 1) * step, np.arange(n + 1) * step, indexing="xy"), -1) + 2.0
    uv[1:-1, 1:-1] += rng.integers(-1, 2, size=(n - 1, n - 1, 2)) * 0.5
    uv = uv.reshape(-1, 2)
    verts = np.concatenate([(uv - c) * z / fx, np.full((len(uv), 1), z)], 1)
    faces = []
    for r in range(n):
        for col in range(n):
            a, b, d, e = r * (n + 1) + col, r * (n + 1) + col + 1, (r + 1) * (n + 1) + col, (r + 1) * (n + 1) + col + 1
            faces += [[a, b, e], [a, e, d]] if rng.random() < 0.5 else [[a, b, d], [b, e, d]]
    faces = np.array(faces)
    cam = (fx, fx, c + 0.5, c + 0.5)  # + 0.5: the lattice's pixel centres are at k + 0.5
    count = sum(rasterize(verts, f[None], 28, 28, *cam)[1] >= 0 for f in faces)
    expected = np.zeros((28, 28), int)
    expected[2:26, 2:26] = 1  # the outline spans [2, 26] in u and v
    if c:  # pixel centres on the outline itself may round either way
        for edge in (2, 25):
            expected[edge], expected[:, edge] = count[edge], count[:, edge]
        assert count.max() == 1
    np.testing.assert_array_equal(count, expected)
    np.testing.assert_array_equal(rasterize(verts, faces, 28, 28, *cam)[1] >= 0, count == 1)


def test_vertex_projects_where_the_pinhole_model_says():
    # P projects to u = 500*0.3/2.5 + 100.8 = 160.8, v = 450*(-0.2)/2.5 + 81.2 = 45.2. The triangle
    # P, P + (2.5 px, 0), P + (0, 2.5 px) covers centres (i + 0.5, j + 0.5) with i + 0.5 >= 160.8,
    # j + 0.5 >= 45.2, (i + 0.5 - 160.8) + (j + 0.5 - 45.2) <= 2.5: (col, row) = (161, 45), (162, 45), (161, 46).
    z = 2.5
    p = np.array([0.3, -0.2, z])
    verts = np.stack([p, p + [2.5 * z / 500, 0, 0], p + [0, 2.5 * z / 450, 0]])
    _, face = rasterize(verts, np.array([[0, 1, 2]]), 100, 200, 500.0, 450.0, 100.8, 81.2)
    assert pixel_set(face >= 0) == {(45, 161), (45, 162), (46, 161)}


def test_large_triangles_and_small_chunks(monkeypatch):
    # A quad bigger than the frame (many tiles per triangle) covers every pixel.
    depth, face = rasterize(quad(-5, 5, -5, 5, 3.0), QUAD_FACES, 200, 300, 100.0, 100.0, 150.0, 100.0)
    assert (face >= 0).all() and np.allclose(depth, 3.0)
    # Chunking must not change the result.
    verts, faces = uv_sphere(centre=(0.1, 0.0, 3.0))
    want = rasterize(verts, faces, 64, 80, 60.0, 60.0, 40.0, 32.0)
    monkeypatch.setattr(render, "_CHUNK", 7)
    got = rasterize(verts, faces, 64, 80, 60.0, 60.0, 40.0, 32.0)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def naive_rasterize(verts, faces, h, w, fx, fy, cx, cy):
    """Reference: loop over triangles, test every pixel centre, keep the nearest (ties ignored)."""
    depth, face = np.full((h, w), np.inf), np.full((h, w), -1)
    uv = np.stack([fx * verts[:, 0] / verts[:, 2] + cx, fy * verts[:, 1] / verts[:, 2] + cy], 1)
    jj, ii = np.mgrid[:h, :w].astype(float) + 0.5  # pixel centres
    for k, (a, b, c) in enumerate(faces):
        (x0, y0), (x1, y1), (x2, y2) = uv[a], uv[b], uv[c]
        area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
        l0 = ((x1 - ii) * (y2 - jj) - (y1 - jj) * (x2 - ii)) / area
        l1 = ((x2 - ii) * (y0 - jj) - (y2 - jj) * (x0 - ii)) / area
        l2 = 1 - l0 - l1
        inside = (l0 >= 0) & (l1 >= 0) & (l2 >= 0)
        z = 1 / (l0 / verts[a, 2] + l1 / verts[b, 2] + l2 / verts[c, 2])
        closer = inside & (z < depth)
        depth[closer], face[closer] = z[closer], k
    return depth, face


def test_matches_naive_reference_on_a_jittered_sphere():
    rng = np.random.default_rng(1)
    verts, faces = uv_sphere(10, 14, radius=0.8, centre=(0.05, -0.1, 2.5))
    verts += rng.normal(scale=0.02, size=verts.shape)
    args = (64, 72, 70.0, 75.0, 35.7, 31.2)
    depth, face = rasterize(verts, faces, *args)
    ref_depth, ref_face = naive_rasterize(verts, faces, *args)
    np.testing.assert_array_equal(face, ref_face)
    hit = face >= 0
    np.testing.assert_allclose(depth[hit], ref_depth[hit], rtol=1e-6)


# ------------------------------------------------------------------- depth and occlusion


@pytest.mark.parametrize("near_first", [True, False])
def test_nearer_mesh_wins_regardless_of_order(near_first):
    near, far = quad(-0.5, 0.2, -0.5, 0.2, 2.0), quad(-0.3, 0.9, -0.3, 0.9, 4.0)
    meshes = [near, far] if near_first else [far, near]
    depth, face, mesh = rasterize_meshes(meshes, QUAD_FACES, 64, 64, 50.0, 50.0, 32.0, 32.0)
    near_id = 0 if near_first else 1
    # Near square: u in [19.5, 37]; far square: u in [28.25, 43.25] (same for v); pixel k's centre is k + 0.5.
    overlap = (slice(30, 36), slice(30, 36))
    assert (mesh[overlap] == near_id).all() and np.allclose(depth[overlap], 2.0)
    assert (mesh[38:43, 38:43] == 1 - near_id).all() and np.allclose(depth[38:43, 38:43], 4.0)
    assert (mesh[43] == -1).all() and (mesh[:, 43] == -1).all()
    assert set(np.unique(face[mesh >= 0])) == {0, 1}
    assert ((face >= 0) == (mesh >= 0)).all()


def test_depth_is_perspective_correct_on_a_tilted_plane():
    # Plane n.P = c; a quad on it spanning the frame. Along the ray through pixel (u, v),
    # r = ((u-cx)/fx, (v-cy)/fy, 1), the plane is hit at depth Z = c / (n.r).
    n, c = np.array([0.4, -0.3, 1.0]), 3.0
    h, w, fx, fy, cx, cy = 48, 64, 60.0, 55.0, 31.5, 23.5
    ray = lambda u, v: np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], -1)  # noqa: E731
    corners = ray(np.array([-3.0, w + 3, w + 3, -3]), np.array([-3.0, -3, h + 3, h + 3]))
    verts = corners * (c / (corners @ n))[:, None]
    depth, face = rasterize(verts, QUAD_FACES, h, w, fx, fy, cx, cy)
    assert (face >= 0).all()
    jj, ii = np.mgrid[:h, :w].astype(float) + 0.5  # pixel centres
    truth = c / (ray(ii, jj) @ n)
    assert truth.max() / truth.min() > 1.5  # tilted enough that screen-linear z would be visibly off
    np.testing.assert_allclose(depth, truth, rtol=1e-4)


# -------------------------------------------------------------------- robustness


def test_behind_camera_and_off_screen_render_nothing():
    verts, faces = uv_sphere(centre=(0.0, 0.0, -3.0))
    assert (rasterize(verts, faces, 32, 32, 30.0, 30.0, 16.0, 16.0)[1] < 0).all()
    verts, faces = uv_sphere(centre=(50.0, 0.0, 3.0))
    assert (rasterize(verts, faces, 32, 32, 30.0, 30.0, 16.0, 16.0)[1] < 0).all()
    # Straddling the camera plane: only triangles entirely in front are drawn, without errors.
    verts, faces = uv_sphere(centre=(0.0, 0.0, 0.5))
    depth, face = rasterize(verts, faces, 32, 32, 30.0, 30.0, 16.0, 16.0)
    assert np.all(depth[face >= 0] > render.NEAR)


def test_degenerate_and_non_finite_triangles_are_skipped():
    verts = np.array([[0, 0, 2], [1, 0, 2], [2, 0, 2], [0, 1, 2], [np.nan, 0, 2]], dtype=float)
    faces = np.array([[0, 1, 2], [0, 0, 3], [0, 1, 4], [3, 3, 3]])  # collinear, repeated, NaN, point
    depth, face = rasterize(verts, faces, 20, 20, 10.0, 10.0, 5.0, 5.0)
    assert (face < 0).all() and np.isinf(depth).all()


def test_input_dtypes_and_layouts_agree():
    verts, faces = uv_sphere(centre=(0.2, 0.1, 3.0))
    args = (40, 50, 45.0, 45.0, 25.0, 20.0)
    want = rasterize(verts, faces, *args)
    strided = np.asfortranarray(np.repeat(verts, 2, axis=1))[:, ::2]  # non-contiguous view
    faces_strided = np.repeat(faces, 2, axis=0)[::2]
    for v, f in [(verts.astype(np.float32), faces.astype(np.int32)), (strided, faces_strided),
                 (torch.from_numpy(verts).T.contiguous().T, torch.from_numpy(faces))]:  # fmt: skip
        got = rasterize(v, f, *args)
        assert (got[1] >= 0).sum() == (want[1] >= 0).sum()
        np.testing.assert_allclose(got[0], want[0], rtol=1e-5)


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        rasterize(np.zeros((4, 2)), QUAD_FACES, 8, 8, 1.0, 1.0, 4.0, 4.0)
    with pytest.raises(ValueError):
        rasterize(quad(0, 1, 0, 1, 2), QUAD_FACES + 2, 8, 8, 1.0, 1.0, 4.0, 4.0)


# ---------------------------------------------------------------------- compositing


def test_empty_scene_returns_input_and_background():
    image = np.random.default_rng(2).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    out = render_overlay(image, [], QUAD_FACES, 30.0, 30.0, 16.0, 12.0)
    np.testing.assert_array_equal(out, image)
    assert out is not image
    side = render_side_view((24, 32), [], QUAD_FACES, 30.0, 30.0, 16.0, 12.0, background=(10, 20, 30))
    assert side.shape == (24, 32, 3) and (side == [10, 20, 30]).all()


def test_overlay_changes_exactly_the_covered_pixels():
    verts, faces = uv_sphere(centre=(0.3, 0.0, 3.0))
    other, _ = uv_sphere(radius=0.7, centre=(-0.6, 0.2, 4.0))
    image = np.zeros((60, 80, 3), np.uint8)
    _, _, mesh = rasterize_meshes([verts, other], faces, 60, 80, 40.0, 40.0, 40.0, 30.0)
    out = render_overlay(image, [verts, other], faces, 40.0, 40.0, 40.0, 30.0)
    np.testing.assert_array_equal((out != image).any(-1), mesh >= 0)
    assert {0, 1} <= set(np.unique(mesh))
    # Each person gets its own palette colour (the hue of the brightest pixel).
    for k in (0, 1):
        px = out[mesh == k].astype(float)
        brightest = px[px.sum(1).argmax()]
        assert np.argmax(brightest) == np.argmax(PALETTE[k])


def test_shading_ignores_winding():
    verts, faces = uv_sphere(centre=(0.0, 0.0, 3.0))
    image = np.full((40, 40, 3), 128, np.uint8)
    a = render_overlay(image, [verts], faces, 40.0, 40.0, 20.0, 20.0)
    b = render_overlay(image, [verts], faces[:, ::-1], 40.0, 40.0, 20.0, 20.0)
    assert np.abs(a.astype(int) - b).max() <= 1
    assert a[20, 20].sum() > a[20, 9].sum()  # facing the light is brighter than grazing


def test_side_view_turns_depth_into_width():
    # 0.2 m wide, 2 m deep: a sliver from the front, a long bar from the side.
    verts, faces = box((0.2, 0.2, 2.0), (0.0, 0.0, 6.0))
    args = (200.0, 200.0, 64.0, 64.0)
    front = render_overlay(np.zeros((128, 128, 3), np.uint8), [verts], faces, *args).any(-1)
    side = (render_side_view((128, 128), [verts], faces, *args) != 255).any(-1)
    width = lambda m: np.ptp(np.nonzero(m.any(0))[0]) + 1  # noqa: E731
    height = lambda m: np.ptp(np.nonzero(m.any(1))[0]) + 1  # noqa: E731
    assert width(side) > 4 * width(front)
    assert width(side) > 4 * height(side)


def test_side_view_puts_farther_people_on_the_right():
    near, faces = box((0.3, 0.3, 0.3), (0.0, 0.0, 5.0))
    far, _ = box((0.3, 0.3, 0.3), (0.0, 0.0, 7.0))
    colors = [(255, 0, 0), (0, 0, 255)]
    side = render_side_view((96, 96), [near, far], faces, 100.0, 100.0, 48.0, 48.0, colors=colors).astype(int)
    red = np.nonzero((side[..., 0] > side[..., 2] + 20).any(0))[0]
    blue = np.nonzero((side[..., 2] > side[..., 0] + 20).any(0))[0]
    assert len(red) and len(blue) and red.max() < blue.min()


def test_side_view_keeps_people_far_apart_in_depth_in_the_frame():
    # 1.3 m and 4 m away, off to opposite sides: turned by 90 degrees about their centroid, the
    # far one would leave the frame; the side view backs off until both are fully visible.
    near, faces = box((0.4, 1.7, 0.3), (-0.5, 0.0, 1.3))
    far, _ = box((0.4, 1.7, 0.3), (1.2, 0.0, 4.0))
    colors = [(255, 0, 0), (0, 0, 255)]
    side = render_side_view((120, 280), [near, far], faces, 300.0, 300.0, 140.0, 60.0, colors=colors).astype(int)
    red = (side[..., 0] > side[..., 2] + 20) & (side[..., 1] < 100)
    blue = (side[..., 2] > side[..., 0] + 20) & (side[..., 1] < 100)
    assert red.any() and blue.any()
    for mask in (red, blue):  # nothing touches the border: each box is whole
        assert not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
