"""The body-model interface shared by SMPL and Anny, and the kinematics both are built on.

Every model outputs bodies in SMPL's canonical frame: metres, +Y up, the body facing +Z, its
left side towards +X, the pelvis near the origin at the rest pose. An identity global
orientation followed by a 180 degree rotation about X then gives an upright person facing an
OpenCV camera, which is how CLIFF places bodies.

Poses are given as local joint rotations, SMPL-style: `rotmats[:, j]` rotates joint j's
subtree about joint j, in the canonical axes of the rest pose, relative to its parent. With
G_j = G_parent(j) @ rotmats[:, j] (G_root = rotmats[:, 0]), a rest-pose point p skinned to
joint j goes to G_j (p - J_j) + posed position of J_j. All rotations identity = the rest pose.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import CliffError
from ..perception.keypoints import COCO17_NAMES  # noqa: F401  (the interface names the order its keypoints come in)


# Canonical frame (Y up, facing +Z) -> an upright person facing an OpenCV camera (y down, z forward):
# 180 degrees about X.
FACE_CAMERA = torch.diag(torch.tensor([1.0, -1.0, -1.0]))


@dataclass
class Estimate:
    """Body parameters for P people. rotmat (P, J, 3, 3) local, [0] in the camera frame; betas (P, S); transl (P, 3)."""

    rotmat: Tensor
    betas: Tensor
    transl: Tensor


@dataclass
class BodyOutput:
    """A batch of posed bodies, in metres in the canonical frame, translation included."""

    vertices: Tensor  # (B, V, 3)
    joints: Tensor  # (B, J, 3) the model's kinematic joints, posed
    keypoints: Tensor  # (B, 17, 3) COCO-17 keypoints in COCO17_NAMES order


class BodyModel(nn.Module):
    """A differentiable, batched parametric body: local joint rotations + shape -> mesh.

    Subclasses set the attributes below and register `faces` as a buffer.
    """

    name: str  # "smpl" | "anny"
    faces: Tensor  # (F, 3) int64
    num_joints: int  # rotations taken by forward, root first
    num_betas: int  # shape coefficients
    joint_names: list[str]
    parents: list[int]  # parent of each joint, -1 for the root; parents[j] < j
    weights: Tensor  # (V, J) linear blend skinning weights, rows summing to 1

    @property
    def num_vertices(self) -> int:
        raise NotImplementedError

    def forward(self, rotmats: Tensor, betas: Tensor, transl: Tensor | None = None) -> BodyOutput:
        """rotmats (B, num_joints, 3, 3) local rotations, rotmats[:, 0] the global orientation;
        betas (B, num_betas); transl (B, 3) added to every output point."""
        raise NotImplementedError

    def keypoints_only(self, rotmats: Tensor, betas: Tensor, transl: Tensor | None = None) -> Tensor:
        """(B, 17, 3) COCO-17 keypoints, same arguments as `forward`. Models may override this with
        a cheaper computation for optimisation loops, which only need the keypoints."""
        return self(rotmats, betas, transl).keypoints

    def root_position(self, betas: Tensor) -> Tensor:
        """(B, num_betas) -> (B, 3) the root joint at the rest pose, about which the global
        orientation turns the body: body(R) = R_0 (body(R with R_0 = I) - root) + root."""
        eye = torch.eye(3, dtype=betas.dtype, device=betas.device).expand(betas.shape[0], self.num_joints, 3, 3)
        return self(eye, betas).joints[:, 0]

    def shape_excess(self, betas: Tensor) -> Tensor:
        """(B, num_betas) -> (B,) how far the shape lies outside the model's valid range (squared);
        0 for models whose shape space has no bounds."""
        return betas.new_zeros(betas.shape[0])

    def regress(self, vertices: Tensor, regressor: Tensor) -> Tensor:
        """Joints from vertices by a linear regressor (e.g. H36M's): (B, V, 3), (K, V) -> (B, K, 3)."""
        if regressor.ndim != 2 or regressor.shape[1] != vertices.shape[1]:
            raise CliffError(
                f"joint regressor of shape {tuple(regressor.shape)} does not fit the {self.name} body "
                f"({vertices.shape[1]} vertices): expected (K, {vertices.shape[1]})"
            )
        return torch.einsum("kv,bvc->bkc", regressor.to(vertices), vertices)

    def _check_inputs(self, rotmats: Tensor, betas: Tensor, transl: Tensor | None) -> None:
        B = rotmats.shape[0]
        if rotmats.shape != (B, self.num_joints, 3, 3):
            raise ValueError(f"{self.name}: rotmats must be (B, {self.num_joints}, 3, 3), got {tuple(rotmats.shape)}")
        if betas.shape != (B, self.num_betas):
            raise ValueError(f"{self.name}: betas must be ({B}, {self.num_betas}), got {tuple(betas.shape)}")
        if transl is not None and transl.shape != (B, 3):
            raise ValueError(f"{self.name}: transl must be ({B}, 3), got {tuple(transl.shape)}")


@functools.lru_cache(maxsize=8)
def _tree_levels(parents: tuple[int, ...]) -> tuple[Tensor, list[int], list[Tensor], Tensor]:
    """Joints grouped by depth in the tree: the joints in level order, the size of each level,
    per level below the root the positions of its joints' parents within the level above, and
    the permutation from level order back to joint order."""
    depth = [0] * len(parents)
    for j in range(1, len(parents)):
        depth[j] = depth[parents[j]] + 1
    levels = [[j for j in range(len(parents)) if depth[j] == d] for d in range(max(depth) + 1)]
    slots = [{j: i for i, j in enumerate(level)} for level in levels]
    parent_pos = [torch.tensor([slots[d - 1][parents[j]] for j in level]) for d, level in enumerate(levels) if d > 0]
    order = torch.tensor([j for level in levels for j in level])
    return order, [len(level) for level in levels], parent_pos, torch.argsort(order)


def forward_kinematics(rotmats: Tensor, rest_joints: Tensor, parents: list[int]) -> tuple[Tensor, Tensor]:
    """Pose a skeleton given local rotations about its rest joints.

    rotmats (B, J, 3, 3) local rotations; rest_joints (B, J, 3); parents[j] < j, -1 for the root.
    Returns the posed joints (B, J, 3) and the skinning transforms (B, J, 3, 4) that map a
    rest-pose point rigidly attached to joint j to its posed position (the root stays in place).
    Each joint's local transform [R_j | offset_j] is a 4x4 matrix, and all joints at one depth
    of the tree are chained onto their parents' [G_p | posed_p] by one matrix product: a few
    tensor operations per level rather than per joint, since the fitting loop is bound by the
    number of operations.
    """
    B, J = rotmats.shape[:2]
    offsets = torch.cat((rest_joints[:, :1], rest_joints[:, 1:] - rest_joints[:, parents[1:]]), dim=1)
    order, sizes, parent_pos, back = _tree_levels(tuple(parents))
    bottom = rotmats.new_tensor([0.0, 0.0, 0.0, 1.0]).expand(B, J, 1, 4)
    local = torch.cat((torch.cat((rotmats, offsets[..., None]), -1), bottom), -2)[:, order]  # (B, J, 4, 4)
    per_level = local.split(sizes, dim=1)
    chained = [per_level[0][:, :, :3]]
    for level, pos in zip(per_level[1:], parent_pos):
        chained.append(chained[-1][:, pos] @ level)
    world = torch.cat(chained, dim=1)[:, back]  # (B, J, 3, 4): [G_j | posed_j]
    G, posed = world[..., :3], world[..., 3]
    # x -> G_j (x - rest_j) + posed_j
    shift = posed - (G @ rest_joints[..., None])[..., 0]
    return posed, torch.cat((G, shift[..., None]), dim=-1)


def linear_blend_skinning(vertices: Tensor, weights: Tensor, transforms: Tensor) -> Tensor:
    """vertices (B, V, 3) rest pose, weights (V, J) rows summing to 1, transforms (B, J, 3, 4)
    from `forward_kinematics` -> posed vertices (B, V, 3)."""
    B, J = transforms.shape[:2]
    blended = (weights @ transforms.reshape(B, J, 12)).reshape(B, -1, 3, 4)  # (B, V, 3, 4)
    return (blended[..., :3] * vertices[:, :, None, :]).sum(-1) + blended[..., 3]


def skinning_pairs(regressor: Tensor, weights: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The (keypoint, joint) pairs through which a vertex regressor sees the skinning.

    A keypoint regressed from skinned vertices, k = sum_v r_kv sum_j w_vj T_j [v_v; 1], is
    sum_j T_j q_kj with q_kj = sum_v r_kv w_vj [v_v; 1]: exact, and nonzero only for the pairs
    (k, j) whose vertices j moves. regressor (K, V), weights (V, J), both non-negative ->
    keypoint (P,), joint (P,) indices of the P such pairs, and their vertex weights (P, V)
    r_kv w_vj, by which any rest-pose vertex quantity gives the pairs' q.
    """
    mass = regressor @ weights  # (K, J)
    keypoint, joint = mass.nonzero(as_tuple=True)
    return keypoint, joint, regressor[keypoint] * weights[:, joint].T


def skin_pairs(points: Tensor, joint: Tensor, gather: Tensor, transforms: Tensor) -> Tensor:
    """Posed keypoints from their pairs (`skinning_pairs`), the same numbers as regressing the
    skinned mesh. points (B, P, 4) each pair's q (weighted rest position, weight); joint (P,);
    gather (K, P) 1 where pair p belongs to keypoint k; transforms (B, J, 3, 4) from
    `forward_kinematics` -> (B, K, 3)."""
    posed = (transforms[:, joint] @ points[..., None])[..., 0]  # (B, P, 3)
    return gather @ posed

