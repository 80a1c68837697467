"""Anny (NAVER, Apache-2.0 code on MakeHuman's CC0 assets) as a `BodyModel`.

What Anny itself uses (anny 0.6.2, default rig and topology): metres, +Z up, the body facing -Y,
its left side at +X; 104 bones; 13,718 vertices, 27,420 triangles; shape from six phenotype
values in [0, 1] (age in [-1/3, 1]) through blend shapes; rest pose an A-pose.

This wrapper:
- Frame: SMPL's canonical frame (see `base`), i.e. (x, y, z) = (x, z, -y) of Anny's, with the
  root bone's head (the pelvis) at the origin for every shape, so joints[:, 0] == transl.
- Pose: the 20 bones of `ANNY_JOINT_NAMES` (real Anny bone names), posed SMPL-style as in
  `base`: rotmats[:, j] rotates bone j's subtree about the bone's head, in canonical axes
  (X left, Y up, Z forward) of the rest pose, relative to its parent in this list; e.g. a
  positive rotation about +X at "lowerleg01.L" flexes the left knee. The other 84 bones
  (pelvis.L/R, spine05/03, neck02/03, shoulder01, twist bones upperarm02/lowerarm02/
  upperleg02/lowerleg02, toes, fingers, eyes) keep their rest orientation relative to their
  parent. All identity = Anny's rest pose: an A-pose, legs straight, upper arms about 48
  degrees below horizontal, elbows bent so that the forearms point down, out and forwards.
- Shape: betas (B, 6) are offsets of the phenotype values PHENOTYPES from `phenotype_mean`
  (Anny's default 0.5 each; gender 0 = male, 1 = female, and `gender=` picks the centre),
  clamped to Anny's valid range; beyond it the shape stops changing and the gradient is 0.
  betas = 0 gives a young adult (age at Anny's 'young' anchor, the rest 0.5), about 1.84 m tall.
- Skinning: Anny's rest shapes and skin weights with LBS in torch, not Anny's Warp kernel, so
  autograd sees every step. Bones that keep their rest orientation move rigidly with their
  parent, so their skin weights are merged into their nearest posed ancestor; the result is
  Anny's 104-bone skinning.
- Keypoints: COCO-17 by the regressor Anny ships (anny/data/keypoints/coco.pth), a fixed
  convex combination of mesh vertices per keypoint. `keypoints_only` gives the same numbers
  without the mesh: the regressor folded into the skinning (`base.skinning_pairs`), 89
  (keypoint, joint) pairs instead of 13,718 vertices.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from .base import BodyModel, BodyOutput, COCO17_NAMES, forward_kinematics, linear_blend_skinning, skin_pairs, skinning_pairs

ANNY_JOINT_NAMES = [
    "root", "upperleg01.L", "upperleg01.R", "spine04", "lowerleg01.L", "lowerleg01.R", "spine02",
    "foot.L", "foot.R", "spine01", "neck01", "clavicle.L", "clavicle.R", "head", "upperarm01.L",
    "upperarm01.R", "lowerarm01.L", "lowerarm01.R", "wrist.L", "wrist.R",
]  # fmt: skip
PHENOTYPES = ("gender", "age", "muscle", "weight", "height", "proportions")
DEFAULT_PHENOTYPE = 0.5
# Anny's age anchors are newborn, baby, child, young, old at -1/3, 0, 1/3, 2/3, 1: centre on
# the young adult, since the people in photos are mostly adults (0.5 looks about 13).
ADULT_AGE = 2 / 3
GENDER_PHENOTYPE = {"neutral": 0.5, "male": 0.0, "female": 1.0}

# Canonical (SMPL) coordinates from Anny's: x -> x, z (up) -> y, -y (forward) -> z.
CANONICAL_FROM_ANNY = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]], dtype=torch.float64)


@functools.lru_cache(maxsize=1)
def anny_model():
    """Anny's own model (default rig and mesh, default phenotypes, float64), built once per
    process. The first build on a machine takes about 90 s and writes caches under ~/.cache."""
    import anny

    # Dense torch skinning instead of the default Warp kernel: nothing here uses Anny's
    # skinning, and this keeps Warp (and its start-up banner) out of the process.
    return anny.Anny(
        rig="anny", topology="anny", local_changes="none", facial_actions="none",
        phenotypes="default", skinning_method="lbs",
    )  # fmt: skip


def _nearest_listed_ancestors(bone_parents: list[int], listed: list[int]) -> list[int]:
    """For every bone, the position in `listed` of itself or its nearest listed ancestor."""
    slot = {bone: i for i, bone in enumerate(listed)}
    owner = []
    for bone in range(len(bone_parents)):
        b = bone
        while b not in slot:
            b = bone_parents[b]
        owner.append(slot[b])
    return owner


class AnnyBody(BodyModel):
    """Anny with 20 posed joints and 6 phenotype betas; conventions in the module docstring."""

    name = "anny"

    def __init__(self, gender: str = "neutral") -> None:
        from anny import KeypointsRegressor
        from anny.models.phenotype import make_phenotype_anchors

        super().__init__()
        model = anny_model()
        if list(model.phenotype_labels) != list(PHENOTYPES):
            raise RuntimeError(f"unexpected Anny phenotypes {model.phenotype_labels}")
        bones = [model.bone_labels.index(name) for name in ANNY_JOINT_NAMES]
        owner = _nearest_listed_ancestors(model.bone_parents, bones)
        self.joint_names = list(ANNY_JOINT_NAMES)
        self.parents = [-1] + [owner[model.bone_parents[b]] for b in bones[1:]]
        self.num_joints = len(bones)
        self.num_betas = len(PHENOTYPES)
        self.phenotype_labels = list(PHENOTYPES)

        with torch.no_grad():
            C = CANONICAL_FROM_ANNY.to(model.dtype)
            # Rest shapes are affine in the blend coefficients: template + coefficients @ directions.
            root = model.template_bone_heads[bones[0]]
            root_dirs = model.bone_heads_blendshapes[:, bones[0]]
            v_template = (model.template_vertices - root) @ C.T
            v_dirs = (model.blendshapes - root_dirs[:, None]) @ C.T  # (K, V, 3)
            j_template = (model.template_bone_heads[bones] - root) @ C.T
            j_dirs = (model.bone_heads_blendshapes[:, bones] - root_dirs[:, None]) @ C.T  # (K, J, 3)
            V = v_template.shape[0]
            weights = torch.zeros(V, self.num_joints, dtype=model.dtype)
            weights.index_put_(
                (torch.arange(V)[:, None], torch.as_tensor(owner)[model.vertex_bone_indices]),
                model.vertex_bone_weights,
                accumulate=True,
            )
            regressor = KeypointsRegressor.coco(model, labels=list(COCO17_NAMES)).regression_weights
            anchors = make_phenotype_anchors(model.dtype)

        f32 = dict(dtype=torch.float32)
        # Not persistent: the body is rebuilt from Anny, never saved inside a checkpoint.
        buffers = {
            "v_template": v_template,
            "shapedirs": v_dirs.reshape(v_dirs.shape[0], -1),  # (K, V * 3)
            "j_template": j_template,
            "jointdirs": j_dirs.reshape(j_dirs.shape[0], -1),  # (K, J * 3)
            "weights": weights,
            "keypoint_regressor": regressor,  # (17, V)
            "blend_projection": model.phenotype_blendshape_projection,
            "phenotype_min": torch.stack([anchors[p][0] for p in PHENOTYPES]),
            "phenotype_max": torch.stack([anchors[p][-1] for p in PHENOTYPES]),
        }
        # The keypoints of the skinned mesh without the mesh, for the fitting loop: per (keypoint,
        # joint) pair its weighted rest position and weight, shaped like the vertices.
        keypoint, joint, pair_weights = skinning_pairs(regressor, weights)
        used = pair_weights.any(0)
        pair_weights = pair_weights[:, used]
        pair_dirs = torch.einsum("pv,nvc->npc", pair_weights, v_dirs[:, used])  # (K, P, 3)
        buffers["kp_pair_template"] = torch.cat((pair_weights @ v_template[used], pair_weights.sum(1, keepdim=True)), 1)
        buffers["kp_pair_dirs"] = torch.cat((pair_dirs, torch.zeros_like(pair_dirs[..., :1])), 2).reshape(len(pair_dirs), -1)
        buffers["kp_pair_gather"] = (keypoint == torch.arange(len(regressor))[:, None]).to(model.dtype)  # (17, P)
        # Which interpolation factors (rows) multiply into each phenotype target (columns).
        buffers["target_factors"] = model.stacked_phenotype_blend_shapes_mask.T
        for key, value in buffers.items():
            self.register_buffer(key, value.to(**f32).contiguous(), persistent=False)
        self.register_buffer("kp_pair_joint", joint, persistent=False)
        self._register_factor_columns(anchors)
        mean = torch.full((len(PHENOTYPES),), DEFAULT_PHENOTYPE)
        mean[PHENOTYPES.index("gender")] = GENDER_PHENOTYPE[gender]
        mean[PHENOTYPES.index("age")] = ADULT_AGE
        self.register_buffer("phenotype_mean", mean, persistent=False)
        self.register_buffer("faces", model.faces.long().clone(), persistent=False)

    def _register_factor_columns(self, anchors: dict[str, Tensor]) -> None:
        """Per column of `_phenotype_factors`: which value it reads (index into PHENOTYPES, 6 = a
        constant 0.5), its anchor's position, the phenotype's first anchor, spacing and anchor
        count; `factor_fixed` >= 0 for columns that are a constant (the races, equal)."""
        from anny.models.phenotype import PHENOTYPE_VARIATIONS

        cols = {"feature": [], "anchor": [], "first": [], "step": [], "count": [], "fixed": []}
        for feature, variations in PHENOTYPE_VARIATIONS.items():
            a = anchors.get(feature)
            if a is not None and not torch.allclose(a[1:] - a[:-1], (a[1] - a[0]).expand(len(a) - 1)):
                raise RuntimeError(f"Anny's {feature} anchors are not evenly spaced: {a.tolist()}")
            for k in range(len(variations)):
                cols["feature"].append(PHENOTYPES.index(feature) if feature in PHENOTYPES else len(PHENOTYPES))
                cols["anchor"].append(k)
                cols["first"].append(float(a[0]) if a is not None else 0.0)
                cols["step"].append(float(a[1] - a[0]) if a is not None else 1.0)
                cols["count"].append(len(variations))
                cols["fixed"].append(1 / len(variations) if a is None else -1.0)
        self.register_buffer("factor_feature", torch.tensor(cols.pop("feature")), persistent=False)
        for key, values in cols.items():
            self.register_buffer(f"factor_{key}", torch.tensor(values, dtype=torch.float32), persistent=False)

    @property
    def num_vertices(self) -> int:
        return self.v_template.shape[0]

    def phenotype(self, betas: Tensor) -> Tensor:
        """betas (B, 6) -> Anny phenotype values (B, 6) in PHENOTYPES order, clamped to the valid range."""
        return torch.clamp(self.phenotype_mean + betas, self.phenotype_min, self.phenotype_max)

    def root_position(self, betas: Tensor) -> Tensor:
        """The pelvis is at the origin for every shape (module docstring): (B, 6) -> zeros (B, 3)."""
        return betas.new_zeros(betas.shape[0], 3)

    def shape_excess(self, betas: Tensor) -> Tensor:
        """Squared phenotype distance outside Anny's valid range, (B, 6) -> (B,): `phenotype` clamps
        there, so the shape stops changing and nothing else would pull such betas back."""
        value = self.phenotype_mean + betas
        return ((self.phenotype_min - value).clamp_min(0) ** 2 + (value - self.phenotype_max).clamp_min(0) ** 2).sum(-1)

    def blend_coefficients(self, phenotype: Tensor) -> Tensor:
        """Phenotype values (B, 6) -> coefficients (B, K) of the rest-shape directions (Anny's
        piecewise-linear interpolation between its phenotype targets, then its compact basis).

        Each of Anny's phenotype targets is weighted by a product of a few interpolation
        factors. Anny forms that product over a dense mask with torch.prod, whose backward is
        slow; here it is a sum of logarithms, one matrix product: exp(log(factors + eps) @ mask).
        eps = 1e-12 keeps factors of 0 (anchors not around a value) finite and their gradient
        exact; it changes a weight by at most ~1e-11.
        """
        factors = self._phenotype_factors(phenotype)
        weights = ((factors + 1e-12).log() @ self.target_factors).exp()  # (B, targets)
        return weights @ self.blend_projection

    def _phenotype_factors(self, phenotype: Tensor) -> Tensor:
        """(B, 6) -> (B, 26) interpolation factors in the order of Anny's PHENOTYPE_VARIATIONS;
        phenotypes this wrapper does not expose stay at Anny's defaults (0.5, races equal).

        Anny's anchors are evenly spaced per phenotype, so each value's factors are (1 - a, a) on
        the two anchors around it, a its fraction of the way; a value on an anchor belongs to the
        interval below it (as Anny's searchsorted, side="left"), so its gradient is one-sided, not 0.
        Computed for all columns at once: the fit calls this every step.
        """
        value = torch.cat((phenotype, phenotype.new_full((phenotype.shape[0], 1), 0.5)), 1)[:, self.factor_feature]
        lo, step, n = self.factor_first, self.factor_step, self.factor_count
        pos = ((value - lo) / step).clamp(torch.zeros_like(n), n - 1)
        upper = pos.ceil().clamp(torch.ones_like(n), n - 1)  # the interval's upper anchor
        alpha = pos - (upper - 1)
        k = self.factor_anchor
        factors = torch.where(k == upper - 1, 1 - alpha, torch.zeros_like(alpha)) + torch.where(k == upper, alpha, torch.zeros_like(alpha))
        return torch.where(self.factor_fixed >= 0, self.factor_fixed, factors)

    def _pose(self, rotmats: Tensor, betas: Tensor, template: Tensor, directions: Tensor):
        """Shape the rest points `template` (N, C) along `directions` (K, N * C) and pose the
        skeleton: -> rest points (B, N, C), posed joints (B, J, 3), skinning transforms (B, J, 3, 4)."""
        self._check_inputs(rotmats, betas, None)
        B = rotmats.shape[0]
        coefficients = self.blend_coefficients(self.phenotype(betas))
        rest = template + (coefficients @ directions).view(B, *template.shape)
        rest_joints = self.j_template + (coefficients @ self.jointdirs).view(B, -1, 3)
        joints, transforms = forward_kinematics(rotmats, rest_joints, self.parents)
        return rest, joints, transforms

    def keypoints_only(self, rotmats: Tensor, betas: Tensor, transl: Tensor | None = None) -> Tensor:
        """COCO-17 keypoints without the mesh: `forward(...).keypoints`, exactly (module docstring)."""
        self._check_inputs(rotmats, betas, transl)
        pairs, _, transforms = self._pose(rotmats, betas, self.kp_pair_template, self.kp_pair_dirs)
        keypoints = skin_pairs(pairs, self.kp_pair_joint, self.kp_pair_gather, transforms)
        return keypoints if transl is None else keypoints + transl[:, None]

    def forward(self, rotmats: Tensor, betas: Tensor, transl: Tensor | None = None) -> BodyOutput:
        self._check_inputs(rotmats, betas, transl)
        rest, joints, transforms = self._pose(rotmats, betas, self.v_template, self.shapedirs)
        vertices = linear_blend_skinning(rest, self.weights, transforms)
        keypoints = self.keypoint_regressor @ vertices
        if transl is not None:
            shift = transl[:, None]
            vertices, joints, keypoints = vertices + shift, joints + shift, keypoints + shift
        return BodyOutput(vertices=vertices, joints=joints, keypoints=keypoints)
