"""HRNet-W48 classification network (the "cls" variant, no classifier), as used by CLIFF-hr48.

Four parallel branches at 1/4 ... 1/32 resolution with 48/96/192/384 channels exchange
information after every module; the classification head then widens each branch to
128/256/512/1024 channels, folds them coarse-ward with strided convs and ends in a
1x1 conv to 2048 channels and a global average pool.

Names match the official HRNet-Image-Classification code (`transition1`, `stage2.0.branches`,
`stage2.0.fuse_layers`, `incre_modules`, `downsamp_modules`, `final_layer`) so CLIFF
checkpoints load as-is. Slots that hold no layer there (`None`) are `nn.Identity` here:
same indices, no parameters, hence the same state_dict keys.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .resnet import Bottleneck, make_layer

WIDTH = 48
# Per stage 2..4: number of HR modules; every branch has 4 basic blocks (W48 config).
STAGE_MODULES = (1, 4, 3)
BLOCKS_PER_BRANCH = 4
HEAD_PLANES = (32, 64, 128, 256)  # x4 bottleneck expansion -> 128/256/512/1024


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, relu: bool = True, bias: bool = False) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=bias), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity shortcut; width and resolution unchanged."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + x)


class HighResolutionModule(nn.Module):
    """Run each branch's blocks, then give every branch the sum of all branches.

    Branch j reaches branch i through `fuse_layers[i][j]`: a 1x1 conv + upsampling when j is
    coarser (j > i), a chain of i - j stride-2 3x3 convs when j is finer, identity when i == j.
    """

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(*(BasicBlock(c) for _ in range(BLOCKS_PER_BRANCH))) for c in channels
        )
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(self._fuse(channels, i, j) for j in range(len(channels))) for i in range(len(channels))
        )
        self.relu = nn.ReLU()

    @staticmethod
    def _fuse(channels: list[int], i: int, j: int) -> nn.Module:
        if j > i:
            return conv_bn(channels[j], channels[i], 1, relu=False)
        if j == i:
            return nn.Identity()
        steps = [conv_bn(channels[j], channels[j], 3, stride=2) for _ in range(i - j - 1)]
        steps.append(conv_bn(channels[j], channels[i], 3, stride=2, relu=False))
        return nn.Sequential(*steps)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        out = []
        for i, fuse_row in enumerate(self.fuse_layers):
            y = xs[i]
            for j, fuse in enumerate(fuse_row):
                if j == i:
                    continue
                z = fuse(xs[j])
                if j > i:
                    z = F.interpolate(z, size=xs[i].shape[-2:], mode="nearest")
                y = y + z
            out.append(self.relu(y))
        return out


def make_transition(prev: list[int], cur: list[int]) -> nn.ModuleList:
    """Adapt the previous stage's branches to the next stage; new branches come from the coarsest one."""
    layers: list[nn.Module] = []
    for i, c in enumerate(cur):
        if i < len(prev):
            layers.append(nn.Identity() if c == prev[i] else conv_bn(prev[i], c, 3))
        else:
            n = i + 1 - len(prev)
            steps = [conv_bn(prev[-1], c if k == n - 1 else prev[-1], 3, stride=2) for k in range(n)]
            layers.append(nn.Sequential(*steps))
    return nn.ModuleList(layers)


class HRNetW48(nn.Module):
    """(B, 3, H, W) -> (B, 2048) globally average-pooled features."""

    num_features = 2048

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_layer(64, 64, 4)

        prev = [64 * Bottleneck.expansion]
        for s, n_modules in enumerate(STAGE_MODULES, start=2):
            cur = [WIDTH * 2**b for b in range(s)]
            setattr(self, f"transition{s - 1}", make_transition(prev, cur))
            setattr(self, f"stage{s}", nn.Sequential(*(HighResolutionModule(cur) for _ in range(n_modules))))
            prev = cur

        self.incre_modules = nn.ModuleList(make_layer(c, p, 1) for c, p in zip(prev, HEAD_PLANES))
        head = [p * Bottleneck.expansion for p in HEAD_PLANES]
        self.downsamp_modules = nn.ModuleList(
            conv_bn(cin, cout, 3, stride=2, bias=True) for cin, cout in zip(head[:-1], head[1:])
        )
        self.final_layer = conv_bn(head[-1], self.num_features, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        for s in range(2, 2 + len(STAGE_MODULES)):
            transition = getattr(self, f"transition{s - 1}")
            xs = [t(xs[min(i, len(xs) - 1)]) for i, t in enumerate(transition)]
            xs = getattr(self, f"stage{s}")(xs)

        y = self.incre_modules[0](xs[0])
        for incre, down, x in zip(self.incre_modules[1:], self.downsamp_modules, xs[1:]):
            y = incre(x) + down(y)
        return self.final_layer(y).mean(dim=(2, 3))
