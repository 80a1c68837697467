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
uniform float alpha;
uniform sampler2D photo;
uniform int rows;
in vec3 v_pos;
in vec3 v_normal;
in vec3 v_color;
out vec4 out_color;
void main() {
    vec3 n = v_normal;
    if (length(n) < 1e-6) n = cross(dFdx(v_pos), dFdy(v_pos));  // normals cancelled out: the face's own
    n = normalize(n);
    if (dot(n, v_pos) > 0.0) n = -n;  // towards the camera, whatever the winding
    vec3 c = v_color * (ambient + (1.0 - ambient) * max(dot(n, light), 0.0)) / 255.0;
    if (alpha < 1.0) {  // blended here, in float, with the photo's pixel: rounded once, when stored
        ivec2 px = ivec2(gl_FragCoord.xy);
        c = mix(texelFetch(photo, ivec2(px.x, rows - 1 - px.y), 0).rgb, c, alpha);
    }
    out_color = vec4(c, 1.0);
}
"""

# The photo under the meshes: one triangle covering the frame, each pixel its own texel.
_PHOTO_VERTEX = """
#version 330
void main() {
    vec2 corner = vec2(float((gl_VertexID & 1) << 2) - 1.0, float((gl_VertexID & 2) << 1) - 1.0);
    gl_Position = vec4(corner, 0.0, 1.0);
}
"""

_PHOTO_FRAGMENT = """
#version 330
uniform sampler2D photo;
uniform int rows;
out vec4 out_color;
void main() {
    ivec2 px = ivec2(gl_FragCoord.xy);
    out_color = vec4(texelFetch(photo, ivec2(px.x, rows - 1 - px.y), 0).rgb, 1.0);
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
            backdrop = ctx.program(vertex_shader=_PHOTO_VERTEX, fragment_shader=_PHOTO_FRAGMENT)
        except Exception as e:  # not installed, no EGL library, no driver: the software renderer draws
            _unavailable = f"{type(e).__name__}: {e}"
            return None
        _local.ctx, _local.program, _local.backdrop = ctx, program, backdrop
    return ctx


def max_size() -> int:
    """The largest framebuffer side this context draws."""
    ctx = _context()
    return 0 if ctx is None else int(ctx.info["GL_MAX_RENDERBUFFER_SIZE"])


def draw(height: int, width: int, meshes, faces, fx, fy, cx, cy, colors, near: float, photo: np.ndarray | None = None,
         background=(255, 255, 255), alpha: float = 1.0) -> np.ndarray:
    """The meshes shaded over `background` -> (H, W, 3) uint8, as `render.render_overlay` and
    `render.render_side_view` compose them. Call only when `available()`.

    photo: (H, W, 3) uint8, blended as alpha * mesh + (1 - alpha) * photo where a mesh covers it;
    without one, covered pixels replace the plain `background` colour (RGB, 0..255).
    The blend is worked out in float in the fragment shader and rounded once when stored in the
    8-bit frame, as the software renderer's rint of the same blend (llvmpipe reads a 1080p frame
    back in about 1 ms as 8-bit colour, 15-19 ms as float).
    """
    ctx, program = _context(), _local.program
    verts, all_faces, offsets = scene(meshes, faces)
    normals = vertex_normals(verts, all_faces)
    keep = (verts[all_faces][..., 2] > near).all(1)  # as the software rasteriser: no clipping at the near plane
    tris = all_faces[keep]
    owner = torch.repeat_interleave(torch.arange(len(offsets) - 1), torch.tensor([len(v) for v in meshes], dtype=torch.long))  # mesh of each vertex
    rgb = torch.as_tensor(mesh_colors(colors, len(offsets) - 1))[owner]
    data = torch.cat((verts, normals, rgb), 1).float().numpy()  # meshes share no vertex: colour per vertex
    # The depth range hugs what is drawn (24-bit depth: sub-millimetre steps at people's distances).
    z = verts[tris.reshape(-1), 2] if len(tris) else torch.ones(1)
    near_plane, far = max(near, 0.9 * float(z.min())), 1.1 * float(z.max()) + near
    program["cam"].value = (float(fx), float(fy), float(cx), float(cy))
    program["size"].value = (float(width), float(height))
    program["depth"].value = (near_plane, far)
    program["light"].value = tuple(LIGHT.tolist())
    program["ambient"].value = AMBIENT
    program["rows"].value = height
    color = ctx.renderbuffer((width, height), components=4, dtype="f1")
    depth = ctx.depth_renderbuffer((width, height))
    fbo = ctx.framebuffer(color_attachments=[color], depth_attachment=depth)
    released = [fbo, color, depth]
    try:
        fbo.use()
        ctx.viewport = (0, 0, width, height)
        ctx.disable(ctx.BLEND)
        ctx.disable(ctx.CULL_FACE)
        fbo.clear(*(np.asarray(background, np.float64) / 255).tolist(), 1.0, depth=1.0)
        if photo is not None:
            texture = ctx.texture((width, height), 3, np.ascontiguousarray(photo).tobytes(), alignment=1)
            released.append(texture)
            texture.use(0)
            program["photo"].value = _local.backdrop["photo"].value = 0
            _local.backdrop["rows"].value = height
            ctx.disable(ctx.DEPTH_TEST)
            quad = ctx.vertex_array(_local.backdrop, [])
            released.insert(0, quad)
            quad.render(vertices=3)
        program["alpha"].value = float(alpha) if photo is not None else 1.0
        ctx.enable(ctx.DEPTH_TEST)
        if len(tris):
            vbo = ctx.buffer(np.ascontiguousarray(data).tobytes())
            ibo = ctx.buffer(tris.to(torch.int32).numpy().tobytes())
            vao = ctx.vertex_array(program, [(vbo, "3f 3f 3f", "pos", "normal", "color")], index_buffer=ibo, index_element_size=4)
            released = [vao, vbo, ibo, *released]
            vao.render()
        out = np.empty((height, width, 3), np.uint8)
        fbo.read_into(out, components=3, dtype="f1", alignment=1)
    finally:
        for obj in released:
            obj.release()
    return out[::-1].copy()  # OpenGL's rows start at the bottom
