"""geometry/boxes: the one place boxes around keypoints are made, on hand-computed cases."""

from __future__ import annotations

import numpy as np
import torch

from cliffhmr.geometry.boxes import box_around, box_iou, box_size, grow_box


def test_box_around_only_the_seen_points():
    points = torch.tensor([[[10.0, 20.0], [30.0, 5.0], [500.0, -400.0], [12.0, 40.0]]])
    seen = torch.tensor([[True, True, False, True]])
    assert box_around(points, seen).tolist() == [[10.0, 5.0, 30.0, 40.0]]
    assert box_around(points).tolist() == [[10.0, -400.0, 500.0, 40.0]]
    nobody = box_around(points, torch.zeros(1, 4, dtype=torch.bool))[0]
    assert (nobody[:2] > nobody[2:]).all()  # inside out: no seen point, no box


def test_grow_size_and_iou_by_hand():
    box = torch.tensor([10.0, 5.0, 30.0, 45.0])  # 20 x 40
    assert grow_box(box, 0.1).tolist() == [8.0, 1.0, 32.0, 49.0]
    assert grow_box(box, 0.1, min_pad=3.0).tolist() == [7.0, 1.0, 33.0, 49.0]  # x grows by 3, not 2
    assert box_size(box).item() == 40.0
    boxes = np.array([[10.0, 5.0, 30.0, 45.0], [20.0, 5.0, 40.0, 45.0], [50.0, 50.0, 60.0, 60.0], [0.0, 0.0, -1.0, 3.0]])
    np.testing.assert_allclose(box_iou(boxes[:1], boxes), [[1.0, 400 / 1200, 0.0, 0.0]])
    np.testing.assert_allclose(box_iou(boxes, boxes[:1])[:, 0], [1.0, 400 / 1200, 0.0, 0.0])  # (N, M) both ways
