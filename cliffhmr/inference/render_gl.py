"""The optional OpenGL renderer: the same pictures as the software rasteriser in `render`, drawn by
OpenGL in an offscreen EGL context (moderngl; on a machine without a GPU, Mesa's llvmpipe).

Used by `render` when `moderngl` is installed (`pip install 'cliff-hmr[gl]'`) and an EGL context
can be made; otherwise, or with CLIFFHMR_RENDERER=software, the software rasteriser draws. The
conventions are the software renderer's: OpenCV camera, pixel (row j, column i) centred at
(i + 0.5, j + 0.5), triangles with a vertex at z <= NEAR dropped rather than clipped, both
windings drawn, smooth normals interpolated perspective-correctly and turned to face the camera,
the same light. OpenGL's rasterisation (pixel centres, top-left rule) is what the software
rasteriser implements, so the two differ only in rounding and in which of two faces at the same
depth wins.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from .shading import AMBIENT, LIGHT, mesh_colors, scene, vertex_normals

_VERTEX = """
#version 330
uniform vec4 cam;      // fx, fy, cx, cy
uniform vec2 size;     // width, height
uniform vec2 depth;    // near, far
in vec3 pos;
in vec3 normal;
in vec3 color;
out vec3 v_pos;
out vec3 v_normal;
out vec3 v_color;
void main() {
    float z = pos.z;
    vec2 uv = cam.xy * pos.xy / z + cam.zw;               // continuous pixel coordinates
    vec2 ndc = vec2(uv.x / size.x * 2.0 - 1.0, 1.0 - uv.y / size.y * 2.0);  // rows from the top
    float n = depth.x, f = depth.y;
    // w = z: OpenGL divides by it and interpolates the outputs perspective-correctly.
    gl_Position = vec4(ndc * z, ((f + n) * z - 2.0 * f * n) / (f - n), z);
    v_pos = pos; v_normal = normal; v_color = color;
}
"""

_FRAGMENT = """
#version 330
uniform vec3 light;
uniform float ambient;
in vec3 v_pos;
in vec3 v_normal;
in vec3 v_color;
out vec4 out_color;
void main() {
    vec3 n = v_normal;
    if (length(n) < 1e-6) n = cross(dFdx(v_pos), dFdy(v_pos));  // normals cancelled out: the face's own
    n = normalize(n);
    if (dot(n, v_pos) > 0.0) n = -n;  // towards the camera, whatever the winding
    out_color = vec4(v_color * (ambient + (1.0 - ambient) * max(dot(n, light), 0.0)), 1.0);
}
"""

_local = threading.local()  # a GL context belongs to the thread that made it
_unavailable: str | None = None  # why not, once a first try has failed


def available() -> bool:
    return _context() is not None


def why_not() -> str:
    """Why OpenGL cannot draw here ('' when it can)."""
    return "" if available() else (_unavailable or "unknown")


def _context():
    global _unavailable
    if _unavailable is not None:
        return None
    ctx = getattr(_local, "ctx", None)
    if ctx is None:
        try:
            import moderngl

            ctx = moderngl.create_standalone_context(backend="egl")
            program = ctx.program(vertex_shader=_VERTEX, fragment_shader=_FRAGMENT)
        except Exception as e:  # not installed, no EGL library, no driver: the software renderer draws
            _unavailable = f"{type(e).__name__}: {e}"
            return None
        _local.ctx, _local.program = ctx, program
    return ctx


def max_size() -> int:
    """The largest framebuffer side this context draws."""
    ctx = _context()
    return 0 if ctx is None else int(ctx.info["GL_MAX_RENDERBUFFER_SIZE"])


def render(height: int, width: int, meshes, faces, fx, fy, cx, cy, colors, near: float):
    """Shaded colours of all meshes -> rgb (H, W, 3) float32 in 0..255 and coverage mask (H, W),
    as `render._render` returns them. Call only when `available()`."""
    ctx, program = _context(), _local.program
    verts, all_faces, offsets = scene(meshes, faces)
    normals = vertex_normals(verts, all_faces)
    owner = torch.repeat_interleave(torch.arange(len(offsets) - 1), offsets.diff())  # mesh of each face
    keep = (verts[all_faces][..., 2] > near).all(1)  # as the software rasteriser: no clipping at the near plane
    tris, owner = all_faces[keep], owner[keep]
    rgb = torch.as_tensor(mesh_colors(colors, len(offsets) - 1))[owner]  # (T, 3) per face
    # Unindexed triangles: a vertex's colour is its face's, and meshes may share nothing.
    data = torch.cat((verts[tris], normals[tris], rgb[:, None].expand(-1, 3, -1)), -1).float().numpy()
    # The depth range hugs what is drawn (24-bit depth: sub-millimetre steps at people's distances).
    z = verts[tris][..., 2] if len(tris) else torch.ones(1)
    near_plane, far = max(near, 0.9 * float(z.min())), 1.1 * float(z.max()) + near
    program["cam"].value = (float(fx), float(fy), float(cx), float(cy))
    program["size"].value = (float(width), float(height))
    program["depth"].value = (near_plane, far)
    program["light"].value = tuple(LIGHT.tolist())
    program["ambient"].value = AMBIENT
    color = ctx.renderbuffer((width, height), components=4, dtype="f4")
    depth = ctx.depth_renderbuffer((width, height))
    fbo = ctx.framebuffer(color_attachments=[color], depth_attachment=depth)
    try:
        fbo.use()
        ctx.viewport = (0, 0, width, height)
        fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        ctx.enable(ctx.DEPTH_TEST)
        ctx.disable(ctx.CULL_FACE)
        if len(data):
            vbo = ctx.buffer(np.ascontiguousarray(data).tobytes())
            vao = ctx.vertex_array(program, [(vbo, "3f 3f 3f", "pos", "normal", "color")])
            vao.render()
            vao.release()
            vbo.release()
        out = np.frombuffer(fbo.read(components=4, dtype="f4"), np.float32).reshape(height, width, 4)[::-1]
    finally:
        fbo.release()
        color.release()
        depth.release()
    return out[..., :3], out[..., 3] > 0.5  # float32 rgb: no copy of the whole frame
