"""The optional OpenGL renderer draws what the software rasteriser draws (where OpenGL is here)."""

import numpy as np
import pytest

from cliffhmr.inference import render, render_gl
from cliffhmr.inference.shading import PALETTE
from test_render import box, uv_sphere

needs_gl = pytest.mark.skipif(not render_gl.available(), reason=f"no OpenGL context here: {render_gl.why_not()}")


def scene():
    """Overlapping spheres at several depths, one across the image's edge, one behind another, a
    box whose near corner reaches in front of the near plane (its faces there are dropped by both),
    and an inside-out sphere (shading must ignore winding)."""
    meshes, faces = [], []
    for centre, radius in (((0.0, 0.0, 4.0), 1.0), ((0.8, 0.3, 3.0), 0.6), ((2.6, -0.5, 5.0), 1.2), ((0.2, 0.1, 6.0), 1.5)):
        v, f = uv_sphere(24, 32, radius, centre)
        meshes.append(v)
        faces.append(f)
    v, f = box((2.0, 2.0, 2.0), (-1.5, 0.8, 0.9))
    meshes.append(v)
    faces.append(f)
    v, f = uv_sphere(16, 24, 0.5, (-1.0, -0.8, 3.5))
    meshes.append(v)
    faces.append(f[:, ::-1])
    return meshes, faces


@needs_gl
@pytest.mark.parametrize("view", ["overlay", "side"])
def test_opengl_draws_what_the_software_rasteriser_draws(view, monkeypatch):
    meshes, faces = scene()
    image = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    cam = (300.0, 310.0, 150.3, 118.7)

    def draw(backend):
        monkeypatch.setenv("CLIFFHMR_RENDERER", backend)
        if view == "overlay":
            return render.render_overlay(image, meshes, faces, *cam, colors=PALETTE[:6]).astype(int)
        return render.render_side_view(image.shape, meshes, faces, *cam, angle_deg=60.0).astype(int)

    soft, gl = draw("software"), draw("gl")
    covered = (soft != (image if view == "overlay" else 255)).any(-1)
    assert covered.mean() > 0.2  # a scene worth comparing
    diff = np.abs(soft - gl).max(-1)
    assert (diff > 2).mean() < 0.002, f"{(diff > 2).sum()} pixels differ by more than 2 levels"
    assert np.abs(soft - gl).mean() < 0.1


def test_the_renderer_can_be_chosen(monkeypatch):
    meshes, faces = scene()
    monkeypatch.setenv("CLIFFHMR_RENDERER", "sofware")
    with pytest.raises(ValueError, match="auto, gl or software"):
        render.render_side_view((24, 32), meshes, faces, 30.0, 30.0, 16.0, 12.0)
    monkeypatch.setenv("CLIFFHMR_RENDERER", "gl")
    if render_gl.available():
        assert render.render_side_view((24, 32), meshes, faces, 30.0, 30.0, 16.0, 12.0).shape == (24, 32, 3)
    else:
        with pytest.raises(RuntimeError, match="OpenGL cannot draw here"):
            render.render_side_view((24, 32), meshes, faces, 30.0, 30.0, 16.0, 12.0)


@needs_gl
def test_opengl_draws_nothing_when_there_is_no_one(monkeypatch):
    """No mesh: the overlay is the photo, the side view its background, as the software draws them."""
    monkeypatch.setenv("CLIFFHMR_RENDERER", "gl")
    image = np.random.default_rng(1).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(render.render_overlay(image, [], np.zeros((0, 3), int), 30.0, 30.0, 16.0, 12.0), image)
    side = render.render_side_view(image.shape, [], np.zeros((0, 3), int), 30.0, 30.0, 16.0, 12.0, background=(10, 20, 30))
    assert side.shape == image.shape and (side == np.array([10, 20, 30], np.uint8)).all()
