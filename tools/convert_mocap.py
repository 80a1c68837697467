"""Free human motion capture -> Anny poses (`data/mocap/anny_poses.npz`).

Sources (all read locally; none of their files is committed, only the derived poses):

* CMU Graphics Lab motion capture, subject 1 (clips 01_01, 01_03; 120 fps BVH of the cgspeed
  conversion), shipped in Debian's ``assimp-testmodels``::

      apt-get download assimp-testmodels && dpkg-deb -x assimp-testmodels_*_all.deb /work/raw/deb
      # -> /work/raw/deb/usr/share/assimp/models/BVH/01_01.bvh, 01_03.bvh

  ``Boxing_Toes.bvh`` in the same folder is NOT used: the package documents no origin for it
  (only the blanket assimp BSD-3 entry; the ``01_nn.bvh.source.txt`` note covers the CMU files).
* DeepMimic's 15 reference clips ``humanoid3d_*.txt`` (Y up, 60/30 fps) and its
  ``humanoid.urdf``, shipped in the pybullet wheel (zlib)::

      pip download --no-deps -d /work/raw pybullet==3.2.7 \\
          --platform manylinux2014_x86_64 --python-version 3.11 --only-binary=:all:

* Holosoma's five climbing mocap sequences ``mocap_climb_seq_*_joint_positions_*.npy``
  ((T, 53, 3) global positions, metres, Z up; joint order MOCAP_DEMO_JOINTS of its
  config_types/data_type.py; 30 fps, the package's default input rate), Apache-2.0::

      pip download --no-deps -d /work/raw holosoma-retargeting==0.1.0

* Vicon marker captures (MARKER_CLIPS; Plug-in-Gait-style markers turned into joint centres by
  `markers_to_landmarks`): DART's ``data/c3d/squat.c3d`` and ``nick_freeform_001.c3d`` (120 fps
  C3D, Y up; Debian ``dart-doc``, DART's blanket BSD-2-clause entry) and ``ThomasFechten.csm``
  (a fencer, 120 fps Vicon CSM text, Z up; ``assimp-testmodels`` as above, its note: "Recorded
  with vicon IQ, july 2008. Free for any purpose.")::

      apt-get download dart-doc && dpkg-deb -x dart-doc_*_all.deb /work/raw/dart
      # -> /work/raw/dart/usr/share/doc/dart/data/c3d/*.c3d, /work/raw/deb/usr/share/assimp/models/CSM/

Regenerate (5-10 minutes on 2 CPU cores, most of it the 400 Adam steps per 2048 frames)::

    PYTHONPATH=. python tools/convert_mocap.py --raw /work/raw --out data/mocap/anny_poses.npz \\
        --check-dir /tmp/mocap_check

Method: each source gives named landmark positions per frame (LANDMARKS, NaN where it has none)
in a Y-up right-handed frame; all frames are retargeted at once to Anny (betas 0) by matching
the UNIT directions of the SEGMENTS (bone lengths and rest poses of the sources do not matter),
plus a small L2 prior on local rotations (twists the directions cannot see stay at rest) and a
stronger one on the knees' and elbows' off-hinge rotations. There is no neck->shoulder segment:
the sources' neck joints sit from 2 cm below to 10 cm above the shoulder line, which would bias
the clavicles; these follow the shoulder line and the prior, and how a trunk bend splits over
the three spine joints is left to the prior too (pelvis->neck and pelvis->mid-shoulder only).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

LANDMARKS = [
    "pelvis", "hip_l", "hip_r", "knee_l", "knee_r", "ankle_l", "ankle_r", "toe_l", "toe_r",
    "neck", "head", "head_top", "shoulder_l", "shoulder_r", "elbow_l", "elbow_r",
    "wrist_l", "wrist_r", "hand_l", "hand_r",
]  # fmt: skip
L = {name: i for i, name in enumerate(LANDMARKS)}
# A derived point, appended after LANDMARKS by `with_derived`.
L["mid_shoulder"] = len(LANDMARKS)
SEGMENTS = [
    ("hip_l", "knee_l"), ("knee_l", "ankle_l"), ("ankle_l", "toe_l"),
    ("hip_r", "knee_r"), ("knee_r", "ankle_r"), ("ankle_r", "toe_r"),
    ("pelvis", "neck"), ("pelvis", "mid_shoulder"), ("neck", "head"), ("head", "head_top"),
    ("shoulder_l", "elbow_l"), ("elbow_l", "wrist_l"), ("wrist_l", "hand_l"),
    ("shoulder_r", "elbow_r"), ("elbow_r", "wrist_r"), ("wrist_r", "hand_r"),
    ("hip_r", "hip_l"), ("shoulder_r", "shoulder_l"),
]  # fmt: skip
# Landmarks that are Anny joints (index into ANNY_JOINT_NAMES); the rest are bone heads or a
# vertex carried rigidly by the joint in ANNY_EXTRA.
ANNY_JOINT_OF = {
    "pelvis": "root", "hip_l": "upperleg01.L", "hip_r": "upperleg01.R", "knee_l": "lowerleg01.L",
    "knee_r": "lowerleg01.R", "ankle_l": "foot.L", "ankle_r": "foot.R", "neck": "neck01", "head": "head",
    "shoulder_l": "upperarm01.L", "shoulder_r": "upperarm01.R", "elbow_l": "lowerarm01.L",
    "elbow_r": "lowerarm01.R", "wrist_l": "wrist.L", "wrist_r": "wrist.R",
}  # fmt: skip
ANNY_EXTRA = {  # landmark: (Anny bone whose head it is, or "top" = highest rest vertex; owning joint)
    "toe_l": ("toe3-1.L", "foot.L"), "toe_r": ("toe3-1.R", "foot.R"),
    "hand_l": ("finger3-1.L", "wrist.L"), "hand_r": ("finger3-1.R", "wrist.R"),
    "head_top": ("top", "head"),
}  # fmt: skip
TARGET_FPS = 30.0


def with_derived(x):
    """Landmarks (..., 20, 3) -> (..., 21, 3): "pelvis" replaced by the hip midpoint (the
    sources put their root at different heights; the hip joints agree), mid-shoulder appended."""
    mid_hip = (x[..., L["hip_l"], :] + x[..., L["hip_r"], :]) / 2
    mid_sh = (x[..., L["shoulder_l"], :] + x[..., L["shoulder_r"], :]) / 2
    cat = torch.cat if isinstance(x, torch.Tensor) else np.concatenate
    stack = torch.stack if isinstance(x, torch.Tensor) else np.stack
    return cat((stack([mid_hip], -2), x[..., 1:, :], stack([mid_sh], -2)), -2)


# ----------------------------------------------------------------------------- BVH


@dataclass
class BVH:
    names: list[str]  # joints, then end sites named "<parent>_end"
    parents: list[int]  # -1 for the root
    offsets: np.ndarray  # (J, 3)
    channels: list[list[str]]  # per joint, e.g. ["Zrotation", "Xrotation", "Yrotation"]; [] for end sites
    frame_time: float
    motion: np.ndarray  # (T, total channels)
    column: list[int] = field(default_factory=list)  # first motion column of each joint


def parse_bvh(text: str) -> BVH:
    """A BVH file's text -> its skeleton and motion (channels as written, degrees)."""
    tokens = text.split()
    names, parents, offsets, channels, column = [], [], [], [], []
    stack, i, ncol = [], 0, 0
    if tokens[0] != "HIERARCHY":
        raise ValueError("not a BVH file: no HIERARCHY")
    i = 1
    while tokens[i] != "MOTION":
        t = tokens[i]
        if t in ("ROOT", "JOINT"):
            names.append(tokens[i + 1])
            i += 2
        elif t == "End":  # "End Site"
            names.append(names[stack[-1]] + "_end")
            i += 2
        elif t == "{":
            parents.append(stack[-1] if stack else -1)
            stack.append(len(names) - 1)
            channels.append([])
            column.append(ncol)
            offsets.append(None)
            i += 1
        elif t == "}":
            stack.pop()
            i += 1
        elif t == "OFFSET":
            offsets[stack[-1]] = [float(v) for v in tokens[i + 1 : i + 4]]
            i += 4
        elif t == "CHANNELS":
            n = int(tokens[i + 1])
            channels[stack[-1]] = tokens[i + 2 : i + 2 + n]
            column[stack[-1]] = ncol
            ncol += n
            i += 2 + n
        else:
            raise ValueError(f"unexpected BVH token {t!r}")
    # MOTION Frames: n Frame Time: dt values...
    n_frames = int(tokens[i + 2])
    frame_time = float(tokens[i + 5])
    values = np.asarray(tokens[i + 6 :], dtype=np.float64)
    if values.size != n_frames * ncol:
        raise ValueError(f"BVH motion has {values.size} numbers, expected {n_frames} x {ncol}")
    return BVH(names, parents, np.asarray(offsets, float), channels, frame_time, values.reshape(n_frames, ncol), column)


def _axis_rotation(axis: str, angle: np.ndarray) -> np.ndarray:
    """(T,) radians about X/Y/Z -> (T, 3, 3)."""
    c, s = np.cos(angle), np.sin(angle)
    o, l = np.zeros_like(c), np.ones_like(c)
    rows = {
        "X": [[l, o, o], [o, c, -s], [o, s, c]],
        "Y": [[c, o, s], [o, l, o], [-s, o, c]],
        "Z": [[c, -s, o], [s, c, o], [o, o, l]],
    }[axis]
    return np.stack([np.stack(r, -1) for r in rows], -2)


def bvh_positions(bvh: BVH) -> np.ndarray:
    """Forward kinematics -> global positions (T, J, 3) of every joint and end site.

    Rotation channels compose in the order written (R = R_first @ R_second @ ...), the BVH
    convention; a joint's position channels replace its offset.
    """
    T = bvh.motion.shape[0]
    G = [None] * len(bvh.names)
    P = [None] * len(bvh.names)
    for j, parent in enumerate(bvh.parents):
        R = np.broadcast_to(np.eye(3), (T, 3, 3))
        local = np.broadcast_to(bvh.offsets[j], (T, 3)).copy()
        for k, ch in enumerate(bvh.channels[j]):
            v = bvh.motion[:, bvh.column[j] + k]
            if ch.endswith("position"):
                local[:, "XYZ".index(ch[0])] = v
            else:
                R = R @ _axis_rotation(ch[0], np.radians(v))
        if parent < 0:
            G[j], P[j] = R, local
        else:
            G[j] = G[parent] @ R
            P[j] = P[parent] + (G[parent] @ local[..., None])[..., 0]
    return np.stack(P, 1)


CMU_LANDMARKS = {
    "pelvis": "Hips", "hip_l": "LeftUpLeg", "hip_r": "RightUpLeg", "knee_l": "LeftLeg", "knee_r": "RightLeg",
    "ankle_l": "LeftFoot", "ankle_r": "RightFoot", "toe_l": "LeftToeBase", "toe_r": "RightToeBase",
    "neck": "Neck1", "head": "Head", "head_top": "Head_end", "shoulder_l": "LeftArm", "shoulder_r": "RightArm",
    "elbow_l": "LeftForeArm", "elbow_r": "RightForeArm", "wrist_l": "LeftHand", "wrist_r": "RightHand",
    "hand_l": "LFingers", "hand_r": "RFingers",
}  # fmt: skip


def load_cmu(path: Path) -> tuple[np.ndarray, float]:
    """CMU BVH -> landmarks (T, 20, 3) in its own Y-up frame (inches-ish units), fps."""
    bvh = parse_bvh(Path(path).read_text())
    pos = bvh_positions(bvh)
    out = np.stack([pos[:, bvh.names.index(CMU_LANDMARKS[n])] for n in LANDMARKS], 1)
    return out, 1.0 / bvh.frame_time


# ----------------------------------------------------------------------------- DeepMimic


def _quat_wxyz_to_rotmat(q: np.ndarray) -> np.ndarray:
    """(T, 4) quaternions (w, x, y, z) -> (T, 3, 3)."""
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)  # fmt: skip


# Frame layout (pybullet_envs/deep_mimic/env/humanoid_pose_interpolator.py, Slerp): duration,
# root position (3), root quaternion (4, w x y z), then per joint a quaternion (w x y z) or one
# angle about the urdf axis.
DEEPMIMIC_LAYOUT = [
    ("chest", 4), ("neck", 4), ("right_hip", 4), ("right_knee", 1), ("right_ankle", 4),
    ("right_shoulder", 4), ("right_elbow", 1), ("left_hip", 4), ("left_knee", 1), ("left_ankle", 4),
    ("left_shoulder", 4), ("left_elbow", 1),
]  # fmt: skip


def read_urdf_joints(text: str) -> dict[str, dict]:
    """urdf text -> {joint name: {parent, child, xyz (3,), axis (3,)}} (rpy is 0 in DeepMimic's)."""
    # The shipped file has stray bytes after </robot>.
    root = ET.fromstring(text[: text.index("</robot>") + len("</robot>")])
    joints = {}
    for j in root.iter("joint"):
        origin = j.find("origin")
        axis = j.find("axis")
        joints[j.get("name")] = dict(
            parent=j.find("parent").get("link"),
            child=j.find("child").get("link"),
            xyz=np.array([float(v) for v in origin.get("xyz").split()]),
            axis=np.array([float(v) for v in axis.get("xyz").split()]) if axis is not None else None,
        )
    return joints


def deepmimic_positions(frames: np.ndarray, joints: dict[str, dict], toe_offsets: dict[str, np.ndarray]):
    """frames (T, 44) -> landmarks (T, 20, 3) in DeepMimic's Y-up world (the person faces +X
    at rest, its left at -Z). The head is the centre of the neck link's sphere (0, 0.7, 0);
    toes are `toe_offsets[side]` in the ankle frame; DeepMimic has no head top and no hands."""
    T = frames.shape[0]
    R = {"root": _quat_wxyz_to_rotmat(frames[:, 4:8])}
    P = {"root": frames[:, 1:4]}
    col = 8
    for name, width in DEEPMIMIC_LAYOUT:
        j = joints[name]
        parent = j["parent"]
        if width == 4:
            local = _quat_wxyz_to_rotmat(frames[:, col : col + 4])
        else:
            axis = j["axis"] / np.linalg.norm(j["axis"])
            if not np.allclose(np.abs(axis), [0, 0, 1]):
                raise ValueError(f"DeepMimic {name}: expected a hinge about z, got {axis}")
            local = _axis_rotation("Z", frames[:, col] * axis[2])
        col += width
        P[name] = P[parent] + (R[parent] @ j["xyz"])
        R[name] = R[parent] @ local
    for side in ("left", "right"):
        wrist = joints[f"{side}_wrist"]
        P[f"{side}_wrist"] = P[f"{side}_elbow"] + R[f"{side}_elbow"] @ wrist["xyz"]
        P[f"{side}_toe"] = P[f"{side}_ankle"] + R[f"{side}_ankle"] @ toe_offsets[side]
    P["head"] = P["neck"] + R["neck"] @ np.array([0.0, 0.7, 0.0])
    names = {
        "pelvis": "root", "neck": "neck", "head": "head",
        **{f"{a}_{s[0]}": f"{s}_{b}" for s in ("left", "right") for a, b in [
            ("hip", "hip"), ("knee", "knee"), ("ankle", "ankle"), ("toe", "toe"),
            ("shoulder", "shoulder"), ("elbow", "elbow"), ("wrist", "wrist")]},
    }  # fmt: skip
    out = np.full((T, len(LANDMARKS), 3), np.nan)
    for lm, key in names.items():
        out[:, L[lm]] = P[key]
    return out


def load_deepmimic(text: str, joints: dict, toe_offsets: dict) -> tuple[np.ndarray, float]:
    """A humanoid3d_*.txt clip -> landmarks (T, 20, 3), fps (from the first frame's duration)."""
    frames = np.asarray(json.loads(text)["Frames"], dtype=np.float64)
    if frames.shape[1] != 44:
        raise ValueError(f"DeepMimic frames must have 44 numbers, got {frames.shape[1]}")
    return deepmimic_positions(frames, joints, toe_offsets), 1.0 / frames[0, 0]


# ----------------------------------------------------------------------------- Holosoma

HOLOSOMA_JOINTS = (
    ["Hips", "Spine", "Spine1", "Neck", "Head", "LeftShoulder", "LeftArm", "LeftForeArm", "LeftHand"]
    + [f"LeftHand{f}{k}" for f in ("Thumb", "Index", "Middle", "Ring", "Pinky") for k in (1, 2, 3)]
    + ["RightShoulder", "RightArm", "RightForeArm", "RightHand"]
    + [f"RightHand{f}{k}" for f in ("Thumb", "Index", "Middle", "Ring", "Pinky") for k in (1, 2, 3)]
    + ["LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToeBase", "RightUpLeg", "RightLeg", "RightFoot", "RightToeBase"]
    + ["LeftFootMod", "RightFootMod"]
)
HOLOSOMA_LANDMARKS = {
    "pelvis": "Hips", "hip_l": "LeftUpLeg", "hip_r": "RightUpLeg", "knee_l": "LeftLeg", "knee_r": "RightLeg",
    "ankle_l": "LeftFoot", "ankle_r": "RightFoot", "toe_l": "LeftToeBase", "toe_r": "RightToeBase",
    "neck": "Neck", "head": "Head", "shoulder_l": "LeftArm", "shoulder_r": "RightArm",
    "elbow_l": "LeftForeArm", "elbow_r": "RightForeArm", "wrist_l": "LeftHand", "wrist_r": "RightHand",
    "hand_l": "LeftHandMiddle1", "hand_r": "RightHandMiddle1",
}  # fmt: skip
HOLOSOMA_FPS = 30.0


def load_holosoma(array: np.ndarray) -> tuple[np.ndarray, float]:
    """(T, 53, 3) Z-up positions -> landmarks (T, 20, 3) in a Y-up frame ((x, z, -y)), fps."""
    if array.shape[1:] != (len(HOLOSOMA_JOINTS), 3):
        raise ValueError(f"holosoma mocap must be (T, 53, 3), got {array.shape}")
    y_up = np.stack([array[..., 0], array[..., 2], -array[..., 1]], -1).astype(np.float64)
    out = np.full((array.shape[0], len(LANDMARKS), 3), np.nan)
    for lm, key in HOLOSOMA_LANDMARKS.items():
        out[:, L[lm]] = y_up[:, HOLOSOMA_JOINTS.index(key)]
    return out, HOLOSOMA_FPS


# ----------------------------------------------------------------------------- C3D and CSM marker captures


def read_c3d(data: bytes) -> tuple[list[str], np.ndarray, float]:
    """A C3D file's bytes -> point labels, positions (T, P, 3) in its units (NaN where a marker
    is missing: negative residual, or all coordinates exactly 0), frame rate.

    Layout (C3D user guide): a 512-byte header whose first byte is the parameter section's block;
    the parameter section starts with 4 bytes (the 4th is the processor: 84 Intel, 86 MIPS), then
    groups and parameters, each "name length (int8, negative = locked), group id (int8, negative
    for a group), name, int16 offset to the next entry"; a parameter then has its type (-1 char,
    1 byte, 2 int16, 4 float), dimensions and data. Point data from POINT:DATA_START, per frame per
    point X Y Z and a residual word, float32 when POINT:SCALE < 0, else int16 times the scale.
    """
    start = (data[0] - 1) * 512
    processor = data[start + 3] - 83
    if processor not in (1, 3):
        raise ValueError(f"C3D processor type {processor} (DEC floats) is not supported")
    end = "<" if processor == 1 else ">"
    groups, params = {}, {}
    pos = start + 4
    while True:
        n_name, gid = (int(v) for v in np.frombuffer(data, np.int8, 2, pos))
        if n_name == 0:
            break
        name = data[pos + 2 : pos + 2 + abs(n_name)].decode("ascii").upper()
        off_at = pos + 2 + abs(n_name)
        offset = int(np.frombuffer(data, end + "i2", 1, off_at)[0])
        if gid < 0:
            groups[-gid] = name
        else:
            q = off_at + 2
            dtype, ndim = int(np.frombuffer(data, np.int8, 1, q)[0]), data[q + 1]
            dims = list(data[q + 2 : q + 2 + ndim])
            q += 2 + ndim
            count = int(np.prod(dims)) if dims else 1
            if dtype == -1:
                raw = data[q : q + count]
                width = dims[0] if dims else 1
                value = [raw[k : k + width].decode("latin-1").strip() for k in range(0, len(raw), width)]
            else:
                value = np.frombuffer(data, {1: "u1", 2: end + "i2", 4: end + "f4"}[abs(dtype)], count, q)
            params[(gid, name)] = value
        if offset == 0:
            break
        pos = off_at + offset

    def get(group, name):
        gid = next(k for k, v in groups.items() if v == group)
        return params[(gid, name)]

    n_points = int(get("POINT", "USED")[0])
    scale = float(get("POINT", "SCALE")[0])
    first = int(get("POINT", "DATA_START")[0])
    rate = float(get("POINT", "RATE")[0])
    labels = get("POINT", "LABELS")[:n_points]
    n_analog = int(np.frombuffer(data, end + "i2", 1, 4)[0])  # analog samples per frame, all channels
    first_frame, last_frame = np.frombuffer(data, end + "u2", 2, 6)
    T = int(last_frame) - int(first_frame) + 1
    word = 4 if scale < 0 else 2
    frame_bytes = (4 * n_points + n_analog) * word
    body = data[(first - 1) * 512 : (first - 1) * 512 + T * frame_bytes]
    if len(body) < T * frame_bytes:
        raise ValueError(f"C3D point data is short: {len(body)} bytes for {T} frames")
    kind = end + ("f4" if scale < 0 else "i2")
    frames = np.frombuffer(body, kind).reshape(T, -1)[:, : 4 * n_points].reshape(T, n_points, 4).astype(np.float64)
    xyz = frames[..., :3] * (1.0 if scale < 0 else abs(scale))
    missing = (frames[..., 3] < 0) | (xyz == 0).all(-1)
    xyz[missing] = np.nan
    return [lab.split(":")[-1] for lab in labels], xyz, rate


def read_csm(text: str) -> tuple[list[str], np.ndarray, float]:
    """A Vicon CSM text file -> marker names ($Order), positions (T, P, 3) in its units (NaN for
    a "DROPOUT" or all-zero marker), frame rate ($Rate)."""
    header, points = text.split("$Points", 1)
    names = header.split("$Order", 1)[1].split()
    rate = float(re.search(r"\$Rate\s+(\S+)", header).group(1))
    rows = [line.split()[1:] for line in points.strip().splitlines() if line.strip()]
    if any(len(r) != 3 * len(names) for r in rows):
        raise ValueError(f"CSM rows must hold 3 x {len(names)} numbers")
    xyz = np.array([[np.nan if v.upper() == "DROPOUT" else float(v) for v in r] for r in rows]).reshape(len(rows), -1, 3)
    xyz[(xyz == 0).all(-1)] = np.nan
    return names, xyz, rate


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


# Joint-centre rules' constants (mm): marker radius (14 mm markers) plus half a typical adult
# knee / ankle / elbow width; the gap from the acromion marker down to the shoulder joint; where
# Anny's head joint (the top of the neck) and head top sit below / above the head markers' centre;
# the neck's offset from C7 towards the front (median of C7-CLAV midpoints in squat.c3d).
MARKER_RADIUS, KNEE_HALF, ANKLE_HALF, ELBOW_HALF = 7.0, 50.0, 35.0, 35.0
SHOULDER_DROP, HEAD_DROP, HEAD_RISE, NECK_FORWARD = 50.0, 70.0, 110.0, 100.0


def _either(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(T, 3) a where it is finite, else b: a per-frame fallback rule."""
    return np.where(np.isfinite(a).all(-1, keepdims=True), a, b)


def markers_to_landmarks(m: dict[str, np.ndarray], up: str) -> np.ndarray:
    """Plug-in-Gait-style markers {name: (T, 3) mm} in a right-handed frame with `up` ("y" or "z")
    vertical -> LANDMARKS (T, 20, 3) metres, Y up; NaN wherever a marker a rule needs is missing.

    Rules (per frame, the first that has its markers):
    * hips: Harrington et al. 2007 (J Biomech 40:595) from the front (LFWT/RFWT, ~ASIS) and back
      (LBWT/RBWT, ~PSIS) waist markers: from the mid-front point, in the pelvis frame (left;
      forward in the markers' plane; up), -0.24 depth - 9.9 forward, -0.30 width - 10.9 up and
      0.33 width + 7.3 sideways (mm; width between the front markers, depth front to back mid-
      points). Pelvis = the hips' midpoint.
    * knees / elbows / wrists / hands: the midpoint of a lateral and a medial marker (KNE/KNI,
      ELB/IEL, OWR/IWR or WRA/WRB, OHAND/IHAND); knee and elbow else the lateral marker moved
      medially by marker radius + half the joint's width, along the knee's axis taken as the
      normal of the shank-foot plane (knee, ankle marker, heel->toe) and the elbow's as the
      normal of the arm's bend (the shoulder line where the elbow is within 30 degrees of
      straight, as the bend's plane is then ill-defined). Hand without hand markers: FIN.
    * ankles: ANK moved medially along the shank-foot normal (neither set has a medial ankle).
    * toes: the midpoint of MT1/MT5, else TOE.
    * shoulders: the midpoint of the front/back shoulder markers (FSH/BSH), else SHO moved down
      (along pelvis->neck) by SHOULDER_DROP. Neck: the midpoint of C7 and CLAV, else C7 moved
      NECK_FORWARD along T10->STRN.
    * head: the centre of LFHD/RFHD/LBHD/RBHD moved along the head's up axis (normal of its
      back->front and right->left directions) down by HEAD_DROP (head joint) and up by HEAD_RISE (top).
    """
    T = next(iter(m.values())).shape[0]
    nan = np.full((T, 3), np.nan)
    g = lambda k: m.get(k, nan)  # noqa: E731
    mid = lambda a, b: (g(a) + g(b)) / 2  # noqa: E731
    out = {}
    front, back = mid("LFWT", "RFWT"), mid("LBWT", "RBWT")
    left = _unit(g("LFWT") - g("RFWT"))
    fwd = front - back
    fwd = _unit(fwd - (fwd * left).sum(-1, keepdims=True) * left)
    vertical = np.cross(fwd, left)
    width = np.linalg.norm(g("LFWT") - g("RFWT"), axis=-1, keepdims=True)
    depth = ((front - back) * fwd).sum(-1, keepdims=True)
    for s, sign in (("l", 1.0), ("r", -1.0)):
        out[f"hip_{s}"] = front + (-0.24 * depth - 9.9) * fwd + (-0.30 * width - 10.9) * vertical + sign * (0.33 * width + 7.3) * left
    out["pelvis"] = (out["hip_l"] + out["hip_r"]) / 2
    out["neck"] = _either(mid("C7", "CLAV"), g("C7") + NECK_FORWARD * _unit(g("STRN") - g("T10")))
    trunk_up = _unit(out["neck"] - out["pelvis"])
    for s, S in (("l", "L"), ("r", "R")):
        out[f"shoulder_{s}"] = _either(mid(f"{S}FSH", f"{S}BSH"), g(f"{S}SHO") - SHOULDER_DROP * trunk_up)
    shoulder_left = _unit(out["shoulder_l"] - out["shoulder_r"])
    for s, S, sign in (("l", "L", 1.0), ("r", "R", -1.0)):
        # The shank-foot plane's normal up x forward points to the body's left for both legs.
        lateral = sign * _unit(np.cross(g(f"{S}KNE") - g(f"{S}ANK"), g(f"{S}TOE") - g(f"{S}HEL")))
        out[f"knee_{s}"] = _either(mid(f"{S}KNE", f"{S}KNI"), g(f"{S}KNE") - (MARKER_RADIUS + KNEE_HALF) * lateral)
        out[f"ankle_{s}"] = g(f"{S}ANK") - (MARKER_RADIUS + ANKLE_HALF) * lateral
        out[f"toe_{s}"] = _either(mid(f"{S}MT1", f"{S}MT5"), g(f"{S}TOE"))
        wrist = _either(mid(f"{S}OWR", f"{S}IWR"), mid(f"{S}WRA", f"{S}WRB"))
        out[f"wrist_{s}"] = wrist
        upper, fore = g(f"{S}ELB") - out[f"shoulder_{s}"], wrist - g(f"{S}ELB")
        bend = np.cross(upper, fore)
        # Flexing swings the forearm forward, so upper x fore points to the body's right for both arms.
        sin = np.linalg.norm(bend, axis=-1, keepdims=True) / (np.linalg.norm(upper, axis=-1, keepdims=True) * np.linalg.norm(fore, axis=-1, keepdims=True))
        axis_left = np.where(sin > np.sin(np.radians(30)), -_unit(bend), shoulder_left)
        out[f"elbow_{s}"] = _either(mid(f"{S}ELB", f"{S}IEL"), g(f"{S}ELB") - sign * (MARKER_RADIUS + ELBOW_HALF) * axis_left)
        out[f"hand_{s}"] = _either(mid(f"{S}OHAND", f"{S}IHAND"), g(f"{S}FIN"))
    centre = (g("LFHD") + g("RFHD") + g("LBHD") + g("RBHD")) / 4
    head_up = _unit(np.cross(mid("LFHD", "RFHD") - mid("LBHD", "RBHD"), mid("LFHD", "LBHD") - mid("RFHD", "RBHD")))
    out["head"] = centre - HEAD_DROP * head_up
    out["head_top"] = centre + HEAD_RISE * head_up
    lm = np.stack([out[n] for n in LANDMARKS], 1) / 1000.0
    return lm if up == "y" else np.stack([lm[..., 0], lm[..., 2], -lm[..., 1]], -1)


# Marker captures: (clip name, file under --raw, reader, vertical axis of the file).
MARKER_CLIPS = [
    ("vicon/dart_squat", "dart/usr/share/doc/dart/data/c3d/squat.c3d", "c3d", "y"),
    ("vicon/dart_freeform", "dart/usr/share/doc/dart/data/c3d/nick_freeform_001.c3d", "c3d", "y"),
    ("vicon/fencing", "deb/usr/share/assimp/models/CSM/ThomasFechten.csm", "csm", "z"),
]  # fmt: skip


def fill_gaps(xyz: np.ndarray, max_gap: int) -> np.ndarray:
    """(T, P, 3) marker paths, NaN where missing -> the same with gaps of at most `max_gap` frames
    between two seen frames filled by linear interpolation (longer gaps and the ends stay NaN)."""
    out = xyz.copy()
    t = np.arange(len(xyz))
    for p in range(xyz.shape[1]):
        seen = np.isfinite(xyz[:, p]).all(-1)
        if seen.sum() < 2:
            continue
        # Per frame: the gap it sits in spans from the last seen frame before it to the next after.
        prev = np.maximum.accumulate(np.where(seen, t, -1))
        nxt = np.minimum.accumulate(np.where(seen, t, len(t))[::-1])[::-1]
        fill = ~seen & (prev >= 0) & (nxt < len(t)) & (nxt - prev - 1 <= max_gap)
        for k in range(3):
            out[fill, p, k] = np.interp(t[fill], t[seen], xyz[seen, p, k])
    return out


def load_markers(path: Path, reader: str, up: str) -> tuple[np.ndarray, float]:
    """A C3D or CSM capture -> landmarks (T, 20, 3) by `markers_to_landmarks` after filling
    marker gaps of up to 0.1 s, fps."""
    names, xyz, rate = read_c3d(path.read_bytes()) if reader == "c3d" else read_csm(path.read_text())
    xyz = fill_gaps(xyz, int(round(0.1 * rate)))
    return markers_to_landmarks({n: xyz[:, i] for i, n in enumerate(names)}, up), rate

# ----------------------------------------------------------------------------- Anny side


class AnnyLandmarks(torch.nn.Module):
    """Anny's skeleton at betas 0 and its LANDMARKS as a function of the 20 local rotations."""

    def __init__(self, body) -> None:
        from cliffhmr.body.anny import CANONICAL_FROM_ANNY, anny_model

        super().__init__()
        model = anny_model()
        self.parents = list(body.parents)
        names = list(body.joint_names)
        with torch.no_grad():
            zeros = torch.zeros(1, body.num_betas)
            coeff = body.blend_coefficients(body.phenotype(zeros)).double()  # (1, K)
            rest = body.j_template.double() + (coeff @ body.jointdirs.double()).view(-1, 3)
            verts = body.v_template.double() + (coeff @ body.shapedirs.double()).view(-1, 3)
            C = CANONICAL_FROM_ANNY.to(model.dtype)
            root = model.bone_labels.index("root")
            extra_points, extra_owner = [], []
            for lm, (bone, owner) in ANNY_EXTRA.items():
                if bone == "top":
                    point = verts[verts[:, 1].argmax()]
                else:
                    b = model.bone_labels.index(bone)
                    head = model.template_bone_heads[b] - model.template_bone_heads[root]
                    dirs = model.bone_heads_blendshapes[:, b] - model.bone_heads_blendshapes[:, root]
                    point = (head + (coeff.to(model.dtype) @ dirs)[0]) @ C.T
                extra_points.append(point.double())
                extra_owner.append(names.index(owner))
        self.register_buffer("rest_joints", rest.float())
        self.register_buffer("extra_points", torch.stack(extra_points).float())  # (E, 3)
        self.extra_owner = extra_owner
        self.joint_index = [names.index(ANNY_JOINT_OF[lm]) if lm in ANNY_JOINT_OF else -1 for lm in LANDMARKS]
        self.extra_slot = {lm: k for k, lm in enumerate(ANNY_EXTRA)}

    def forward(self, rotmats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """rotmats (B, 20, 3, 3) -> landmarks (B, 20 LANDMARKS, 3), posed joints (B, 20, 3)."""
        from cliffhmr.body.base import forward_kinematics

        B = rotmats.shape[0]
        joints, transforms = forward_kinematics(rotmats, self.rest_joints.expand(B, -1, -1), self.parents)
        A = transforms[:, self.extra_owner]  # (B, E, 3, 4)
        extra = (A[..., :3] @ self.extra_points[None, :, :, None])[..., 0] + A[..., 3]
        cols = []
        for lm, j in zip(LANDMARKS, self.joint_index):
            cols.append(joints[:, j] if j >= 0 else extra[:, self.extra_slot[lm]])
        return torch.stack(cols, 1), joints


def _frame_from(left: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """(B, 3) left and rough up -> (B, 3, 3) with columns X left, Y up, Z forward."""
    x = torch.nn.functional.normalize(left, dim=-1)
    z = torch.nn.functional.normalize(torch.cross(x, up, dim=-1), dim=-1)
    y = torch.cross(z, x, dim=-1)
    return torch.stack((x, y, z), -1)


def hinge_axes(anny: AnnyLandmarks) -> dict[int, torch.Tensor]:
    """Joint index -> (3,) unit hinge axis in rest canonical axes: +X for the knees, and for the
    elbows the normal of the rest arm's bend (upper arm x forearm, so flexing is positive)."""
    from cliffhmr.body.anny import ANNY_JOINT_NAMES as N

    rest = anny.rest_joints
    axes = {N.index("lowerleg01.L"): torch.tensor([1.0, 0, 0]), N.index("lowerleg01.R"): torch.tensor([1.0, 0, 0])}
    for s in "LR":
        sh, el, wr = (rest[N.index(f"{b}.{s}")] for b in ("upperarm01", "lowerarm01", "wrist"))
        axes[N.index(f"lowerarm01.{s}")] = torch.nn.functional.normalize(torch.cross(el - sh, wr - el, dim=0), dim=0)
    return axes


def retarget(anny: AnnyLandmarks, landmarks, chunk: int = 2048, **kwargs) -> torch.Tensor:
    """`retarget_batch` over chunks of frames (frames are independent; small batches keep the
    many (B, 3, 3) products in cache, several times faster on CPU than one big batch)."""
    x = np.asarray(landmarks)
    out = []
    for start in range(0, len(x), chunk):
        if kwargs.get("log_every"):
            print(f" frames {start}-{min(start + chunk, len(x))} of {len(x)}", flush=True)
        out.append(retarget_batch(anny, x[start : start + chunk], **kwargs))
    return torch.cat(out)


def retarget_batch(
    anny: AnnyLandmarks,
    landmarks: np.ndarray | torch.Tensor,
    steps: int = 400,
    lr: float = 0.05,
    prior: float = 1e-3,
    hinge_prior: float = 3e-2,
    log_every: int = 0,
) -> torch.Tensor:
    """Source landmarks (B, 20, 3) in a Y-up right-handed frame, NaN where missing -> Anny local
    rotations (B, 20, 3) axis-angle, by matching unit SEGMENT directions (scale-free)."""
    from cliffhmr.geometry.rotation import axis_angle_to_rotmat, rot6d_to_rotmat, rotmat_to_axis_angle

    src = with_derived(torch.as_tensor(np.asarray(landmarks), dtype=torch.float32))
    B = src.shape[0]
    a, b = [L[s[0]] for s in SEGMENTS], [L[s[1]] for s in SEGMENTS]
    d_src = src[:, b] - src[:, a]  # (B, S, 3)
    valid = torch.isfinite(d_src).all(-1) & (d_src.norm(dim=-1) > 1e-6)
    u_src = torch.nn.functional.normalize(torch.nan_to_num(d_src), dim=-1)
    mask = valid.float()

    with torch.no_grad():
        rest_lm = with_derived(anny(torch.eye(3).expand(1, 20, 3, 3))[0])
        F_anny = _frame_from(rest_lm[:, L["hip_l"]] - rest_lm[:, L["hip_r"]], rest_lm[:, L["neck"]] - rest_lm[:, L["pelvis"]])
        F_src = _frame_from(src[:, L["hip_l"]] - src[:, L["hip_r"]], src[:, L["neck"]] - src[:, L["pelvis"]])
        R0 = F_src @ F_anny.transpose(-1, -2)
    root6d = R0[..., :2].reshape(B, 6).clone().requires_grad_(True)
    local = torch.zeros(B, 19, 3, requires_grad=True)
    axes = hinge_axes(anny)
    hinge_idx = torch.tensor(sorted(axes)) - 1  # into `local`
    hinge_ax = torch.stack([axes[j] for j in sorted(axes)])  # (H, 3)
    opt = torch.optim.Adam([root6d, local], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr * 0.02)

    def rotmats() -> torch.Tensor:
        return torch.cat((rot6d_to_rotmat(root6d)[:, None], axis_angle_to_rotmat(local)), 1)

    for step in range(steps):
        lm = with_derived(anny(rotmats())[0])
        u = torch.nn.functional.normalize(lm[:, b] - lm[:, a], dim=-1)
        # Per frame: sum over segments of |u - u_src|^2 = 2 - 2 cos, plus the priors.
        fit = (((u - u_src) ** 2).sum(-1) * mask).sum() / B
        h = local[:, hinge_idx]  # (B, H, 3)
        off_hinge = h - (h * hinge_ax).sum(-1, keepdim=True) * hinge_ax
        reg = prior * (local**2).sum((1, 2)).mean() + hinge_prior * (off_hinge**2).sum((1, 2)).mean()
        loss = fit + reg
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if log_every and (step % log_every == 0 or step == steps - 1):
            print(f"  step {step:4d}  direction loss {fit.item():.5f}  prior {reg.item():.5f}", flush=True)
    with torch.no_grad():
        return torch.cat((rotmat_to_axis_angle(rot6d_to_rotmat(root6d))[:, None], local), 1).detach()


def fit_errors(anny: AnnyLandmarks, pose: torch.Tensor, src: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """Per frame mean distance (mm) between Anny's landmarks and the source's, both pelvis-centred,
    (pelvis = hip midpoint), the source scaled to Anny's size by one least-squares scale per clip. -> (B,)"""
    from cliffhmr.geometry.rotation import axis_angle_to_rotmat

    with torch.no_grad():
        lm, _ = anny(axis_angle_to_rotmat(pose))
    lm = with_derived(lm.double().numpy())[:, : len(LANDMARKS)]
    lm = lm - lm[:, L["pelvis"] : L["pelvis"] + 1]
    src = with_derived(src)[:, : len(LANDMARKS)]
    s = src - src[:, L["pelvis"] : L["pelvis"] + 1]
    ok = np.isfinite(s).all(-1)
    ok[:, L["pelvis"]] = False
    s0 = np.nan_to_num(s)
    err = np.zeros(len(src))
    for c in np.unique(clip):
        m = clip == c
        scale = (lm[m] * s0[m] * ok[m][..., None]).sum() / (s0[m] ** 2 * ok[m][..., None]).sum()
        d = np.linalg.norm(lm[m] - scale * s0[m], axis=-1)
        err[m] = (d * ok[m]).sum(1) / ok[m].sum(1)
    return err * 1000.0


# ----------------------------------------------------------------------------- checks and pictures


def facing_check(src: np.ndarray) -> tuple[float, float]:
    """Agreement of the body's forward (cross(left hip - right hip, up)) with the feet: mean cosine
    of forward with the horizontal ankle->toe direction, and the fraction of frames where the
    knee lies in front of the hip-ankle line (both ~1 for an unmirrored, well-labelled clip)."""
    up = src[:, L["neck"]] - src[:, L["pelvis"]]
    fwd = np.cross(src[:, L["hip_l"]] - src[:, L["hip_r"]], up)
    fwd /= np.linalg.norm(fwd, axis=-1, keepdims=True)
    cos = []
    for s in "lr":
        foot = src[:, L[f"toe_{s}"]] - src[:, L[f"ankle_{s}"]]
        foot = foot - (foot * up).sum(-1, keepdims=True) * up / (up * up).sum(-1, keepdims=True)
        cos.append((foot * fwd).sum(-1) / np.linalg.norm(foot, axis=-1))
    knee_front = []
    for s in "lr":
        h, k, a = (src[:, L[f"{n}_{s}"]] for n in ("hip", "knee", "ankle"))
        mid = (h + a) / 2
        bent = np.linalg.norm(k - mid, axis=-1) > 0.02 * np.linalg.norm(h - a, axis=-1)
        knee_front.append(((k - mid) * fwd).sum(-1)[bent] > 0)
    kf = np.concatenate(knee_front)
    return float(np.nanmean(np.concatenate(cos))), float(kf.mean()) if kf.size else float("nan")


BONES_DRAWN = [("pelvis", "hip_l"), ("pelvis", "hip_r"), ("pelvis", "neck"), ("neck", "shoulder_l"), ("neck", "shoulder_r")] + [
    s for s in SEGMENTS if "mid_shoulder" not in s
]


def draw_stick(anny_lm: np.ndarray, src_lm: np.ndarray | None, path: Path, title: str) -> None:
    """Front (looking at the body, its left on the image's right) and side (from its left) views
    of Anny's landmarks (left blue, right red) in the body frame and, dashed-grey, the source's. Pelvis-centred."""
    from PIL import Image, ImageDraw

    W, H, S = 300, 360, 140.0
    img = Image.new("RGB", (2 * W, H + 20), "white")
    d = ImageDraw.Draw(img)
    d.text((5, 2), title, fill="black")
    views = [(0, lambda p: (p[..., 0], p[..., 1])), (W, lambda p: (p[..., 2], p[..., 1]))]
    for x0, proj in views:
        for pts, colour_l, colour_r, width in ((src_lm, "#999999", "#999999", 1), (anny_lm, "#1f5fd0", "#d02020", 3)):
            if pts is None:
                continue
            px, py = proj(pts - pts[L["pelvis"]])
            for a, b in BONES_DRAWN:
                if not (np.isfinite(px[L[a]]) and np.isfinite(px[L[b]])):
                    continue
                colour = colour_l if a.endswith("_l") or b.endswith("_l") else colour_r if (a.endswith("_r") or b.endswith("_r")) else "black"
                if (a, b) == ("hip_r", "hip_l") or (a, b) == ("shoulder_r", "shoulder_l"):
                    colour = "#555555"
                d.line([(x0 + W / 2 + S * px[L[a]], 20 + H / 2 - S * py[L[a]]), (x0 + W / 2 + S * px[L[b]], 20 + H / 2 - S * py[L[b]])], fill=colour, width=width)
        d.text((x0 + 5, H), "front (its left = right of image)" if x0 == 0 else "side (from its right, facing right)", fill="black")
    img.save(path)


# ----------------------------------------------------------------------------- main


def _deepmimic_toe_offsets(anny: AnnyLandmarks, joints: dict) -> dict[str, np.ndarray]:
    """DeepMimic's foot is a box with no toe joint: put a toe point in the ankle frame along
    Anny's rest ankle->toe direction (the box is flat at rest), as long as half the box."""
    with torch.no_grad():
        rest_lm, _ = anny(torch.eye(3).expand(1, 20, 3, 3))
    out = {}
    for side, s in (("left", "l"), ("right", "r")):
        d = (rest_lm[0, L[f"toe_{s}"]] - rest_lm[0, L[f"ankle_{s}"]]).double().numpy()
        d /= np.linalg.norm(d)
        # canonical (left, up, forward) -> DeepMimic rest (forward +X, up +Y, left -Z)
        out[side] = 0.53 * np.array([d[2], d[1], -d[0]])
    return out


def load_all(raw: Path, anny: AnnyLandmarks):
    """-> list of (name, source, landmarks (T, 20, 3), fps, original frame indices (T,))."""
    clips = []

    def add(name, source, lm, fps, complete=False):
        step = max(1, int(round(fps / TARGET_FPS)))
        idx = np.arange(0, len(lm), step)
        if complete:  # marker captures: frames where a marker a rule needs is missing go
            idx = idx[np.isfinite(lm[idx]).all((1, 2))]
        clips.append((name, source, lm[idx], fps / step, idx))

    bvh_dir = raw / "deb/usr/share/assimp/models/BVH"
    for stem in ("01_01", "01_03"):
        lm, fps = load_cmu(bvh_dir / f"{stem}.bvh")
        add(f"cmu/{stem}", "cmu", lm, fps)

    (wheel,) = sorted(raw.glob("pybullet-3.2.7-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        joints = read_urdf_joints(z.read("pybullet_data/humanoid/humanoid.urdf").decode())
        toes = _deepmimic_toe_offsets(anny, joints)
        for member in sorted(z.namelist()):
            m = re.fullmatch(r"pybullet_data/data/motions/humanoid3d_(\w+)\.txt", member)
            if m:
                lm, fps = load_deepmimic(z.read(member).decode(), joints, toes)
                add(f"deepmimic/{m.group(1)}", "deepmimic", lm, fps)

    (wheel,) = sorted(raw.glob("holosoma_retargeting-0.1.0-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        for member in sorted(z.namelist()):
            m = re.fullmatch(r"holosoma_retargeting/demo_data/climb/mocap_(climb_seq_\d+)/.*_joint_positions_.*\.npy", member)
            if m:
                import io

                array = np.load(io.BytesIO(z.read(member)), allow_pickle=False)
                lm, fps = load_holosoma(array)
                add(f"holosoma/{m.group(1)}", "holosoma", lm, fps)

    for name, rel, reader, up in MARKER_CLIPS:
        lm, fps = load_markers(raw / rel, reader, up)
        add(name, "vicon", lm, fps, complete=True)
    return clips


TEST_CLIPS = {"cmu/01_03", "deepmimic/kick", "deepmimic/run", "deepmimic/getup_faceup", "deepmimic/dance_b", "holosoma/climb_seq_4"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--raw", type=Path, default=Path("/work/raw"), help="folder with deb/ and the two wheels")
    p.add_argument("--out", type=Path, default=Path("data/mocap/anny_poses.npz"))
    p.add_argument("--readme", type=Path, default=None, help="fit summary note (default: next to --out)")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--check-dir", type=Path, default=None, help="write stick-figure PNGs here (keep out of git)")
    p.add_argument("--keep", type=Path, default=None,
                   help="an earlier pose file: its clips (same name and frames) are copied, not refitted, "
                        "so that adding a source leaves the others' poses bit for bit")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))

    from cliffhmr.body.anny import AnnyBody

    anny = AnnyLandmarks(AnnyBody())
    clips = load_all(args.raw, anny)
    names = [c[0] for c in clips]
    lm = np.concatenate([c[2] for c in clips])
    clip = np.concatenate([np.full(len(c[2]), i) for i, c in enumerate(clips)])
    frame = np.concatenate([c[4] for c in clips])
    print(f"{len(names)} clips, {len(lm)} frames", flush=True)

    lines = []
    for i, (name, source, x, fps, _) in enumerate(clips):
        cos, knee = facing_check(x)
        lines.append(f"| {name} | {source} | {len(x)} | {fps:.1f} | {cos:+.2f} | {knee:.2f} |")
        if cos < 0.5:
            print(f"WARNING {name}: feet do not point forward (cos {cos:.2f}): mirrored or mislabelled?")

    pose = torch.zeros(len(lm), 20, 3)
    err = np.zeros(len(lm))
    todo = np.ones(len(lm), bool)
    if args.keep:
        with np.load(args.keep, allow_pickle=False) as z:
            for c, name in enumerate(z["clip_names"]):
                rows, old = np.flatnonzero(clip == names.index(name)) if name in names else [], z["clip"] == c
                if len(rows) and np.array_equal(frame[rows], z["frame"][old]):
                    pose[rows] = torch.from_numpy(z["pose"][old])
                    err[rows] = z["fit_error_mm"][old]
                    todo[rows] = False
        print(f"kept {(~todo).sum()} frames from {args.keep}", flush=True)
    pose[todo] = retarget(anny, lm[todo], steps=args.steps, log_every=200)
    err[todo] = fit_errors(anny, pose[todo], lm[todo], clip[todo])

    from cliffhmr.body.anny import ANNY_JOINT_NAMES as N

    knee_x = pose[:, [N.index("lowerleg01.L"), N.index("lowerleg01.R")], 0].numpy()
    source_of = np.array([c[1] for c in clips])[clip]
    summary = []
    for src in dict.fromkeys(c[1] for c in clips):
        e = err[source_of == src]
        kx = knee_x[source_of == src]
        summary.append(
            f"| {src} | {len(e)} | {e.mean():.1f} | {np.percentile(e, 95):.1f} | "
            f"{(kx > -0.05).mean():.3f} |"
        )
    print("\n".join(summary))

    split = np.array(["test" if n in TEST_CLIPS else "train" for n in names])
    test_frac = float(np.isin(clip, np.flatnonzero(split == "test")).mean())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        pose=pose.numpy().reshape(-1, 20, 3).astype(np.float32),
        clip=clip.astype(np.int16),
        clip_names=np.array(names, dtype=str),
        source=np.array([c[1] for c in clips], dtype=str),
        fps=np.array([c[3] for c in clips], dtype=np.float32),
        frame=frame.astype(np.int32),
        fit_error_mm=err.astype(np.float32),
        split=split.astype(str),
    )
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB), test frames {test_frac:.1%}")

    readme = args.readme or args.out.parent / "README.md"
    readme.write_text(
        "# `anny_poses.npz`: real motion capture as Anny poses\n\n"
        "Written by `tools/convert_mocap.py` (its docstring: sources, download and regeneration\n"
        "commands, method); licences in `cliffhmr/assets/LICENSES.md`. Keys: `pose` (N, 20, 3) float32\n"
        "axis-angle in the convention of `cliffhmr/body/anny.py` (joint 0 = global orientation, Y up),\n"
        "`clip` (N,) into `clip_names`, per clip `source`, `fps`, `split`; per frame `frame` (the frame's\n"
        "index in its source file, every k-th kept; holosoma files start at the `f<first>` in their\n"
        "name) and `fit_error_mm`. Not mirrored: mirror augmentation is the consumer's.\n\n"
        "`fit_error_mm`: after the direction fit, the source landmarks, pelvis-centred and scaled\n"
        "to Anny (one scale per clip), vs Anny's (betas 0): mean distance per landmark. It includes\n"
        "the sources' different proportions and landmark placement, not only fitting error.\n\n"
        "| source | frames | fit error mean (mm) | 95th pct (mm) | knee x-rotation > -0.05 rad (fraction) |\n| --- | --- | --- | --- | --- |\n"
        + "\n".join(summary)
        + f"\n\nSplit by clip: test = {', '.join(sorted(TEST_CLIPS))} ({test_frac:.1%} of frames).\n\n"
        "Per clip: frames kept, fps kept, mean cosine of the body's forward (left hip - right hip)\n"
        "x up with the horizontal ankle->toe direction, fraction of bent-knee frames whose knee is\n"
        "in front of the hip-ankle line (both near 1 unless a clip is mirrored):\n\n"
        "| clip | source | frames | fps | feet vs forward | knees in front |\n| --- | --- | --- | --- | --- | --- |\n"
        + "\n".join(lines)
        + "\n"
    )
    print("\n".join(lines))

    if args.check_dir:
        from cliffhmr.geometry.rotation import axis_angle_to_rotmat

        args.check_dir.mkdir(parents=True, exist_ok=True)
        picks = {"deepmimic/walk": [0, 5, 10], "deepmimic/run": [3], "deepmimic/kick": [10], "cmu/01_01": [100, 300],
                 "deepmimic/cartwheel": [40], "holosoma/climb_seq_0": [300, 1200], "deepmimic/crawl": [20],
                 "vicon/dart_squat": [0, 150, 300, 450], "vicon/dart_freeform": [20, 60, 100], "vicon/fencing": [100, 250, 400, 550]}  # fmt: skip
        for name, frames in picks.items():
            c = names.index(name)
            rows = np.flatnonzero(clip == c)[frames]
            with torch.no_grad():
                alm, _ = anny(axis_angle_to_rotmat(pose[rows]))
            for r, f in zip(rows, frames):
                x = lm[r] - lm[r, L["pelvis"]]
                scale = np.nanmedian(np.linalg.norm(alm[0, L["hip_l"]] - alm[0, L["knee_l"]]) / np.linalg.norm(x[L["hip_l"]] - x[L["knee_l"]]))
                # Source drawn in Anny's frame: rotate it by Anny's root orientation relative to the frame fitted.
                R = axis_angle_to_rotmat(pose[r, 0]).numpy().T
                a = alm[list(rows).index(r)].numpy() @ R.T
                s = (scale * x) @ R.T
                draw_stick(a, s, args.check_dir / f"{name.replace('/', '_')}_{f}.png", f"{name} frame {f}  err {err[r]:.0f} mm")
    return 0


if __name__ == "__main__":
    sys.exit(main())
