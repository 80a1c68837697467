"""One-time conversion: MediaPipe BlazePose TFLite models -> ONNX for cliffhmr.perception.blazepose.

Both models ship inside the PyPI wheel ``mediapipe==0.10.21`` (Apache-2.0); later mediapipe
releases ship none:

``mediapipe/modules/pose_landmark/pose_landmark_full.tflite`` -> ``pose_landmark_full.onnx``
(tensors read from the file; meaning from MediaPipe's tensors_to_pose_landmarks_and_segmentation):

* input  ``input_1``  float32 [1, 256, 256, 3]  RGB in [0, 1], NHWC          -> ONNX ``image``
* output ``Identity``   [1, 195]  39 x (x, y, z, visibility, presence); x, y, z in input pixels
                                  (z on the x scale), visibility/presence are LOGITS -> ``landmarks``
* output ``Identity_1`` [1, 1]    pose presence score, already a probability        -> ``pose_flag``
* output ``Identity_2`` [1, 256, 256, 1] segmentation logits                          (pruned)
* output ``Identity_3`` [1, 64, 64, 39]  heatmap logits used to refine x, y          -> ``heatmap``
* output ``Identity_4`` [1, 117]  39 x (x, y, z) world landmarks, metres, hip-centred -> ``world``

``mediapipe/modules/pose_detection/pose_detection.tflite`` -> ``pose_detection.onnx``
(meaning from MediaPipe's pose_detection_cpu graph):

* input  ``input_1``  float32 [1, 224, 224, 3]  RGB in [-1, 1], NHWC (letterboxed)  -> ``image``
* output ``Identity``   [1, 2254, 12]  per SSD anchor: box cx, cy, w, h, then 4 keypoints x, y
                                      (hip centre, full-body size/rotation point, shoulder centre,
                                      upper-body point), in input pixels relative to the anchor
                                                                                     -> ``regressors``
* output ``Identity_1`` [1, 2254, 1]   score logits                                  -> ``classificators``

``pose_detection.tflite`` stores its weights sparse (DENSIFY ops), which tf2onnx cannot read:
they are first rewritten as dense constants (``densify_tflite``). The weights are stored as
float16 (they are float16 in the TFLite files, so this is lossless) and cast back to float32
when onnxruntime loads the model. This needs tf2onnx, which is NOT a
project dependency. Run it in a throwaway venv:

    python3 -m venv /tmp/convenv
    /tmp/convenv/bin/pip install "tensorflow-cpu==2.15.1" "tf2onnx==1.16.1" onnx "numpy<2" onnxruntime
    pip download --no-deps -d /tmp/wheels mediapipe==0.10.21 \\
        --platform manylinux_2_28_x86_64 --python-version 3.11 --only-binary=:all:
    (cd /tmp/wheels && unzip -o mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl -d mp)
    /tmp/convenv/bin/python tools/convert_pose.py /tmp/wheels/mp cliffhmr/assets

The script checks the ONNX outputs against the TFLite interpreter (from TensorFlow) on random input.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys

from onnx_fp16 import store_weights_fp16  # tools/ is on sys.path when a script here runs
import tempfile

LANDMARK_OUTPUTS = {"Identity": "landmarks", "Identity_1": "pose_flag", "Identity_3": "heatmap", "Identity_4": "world"}
DETECTION_OUTPUTS = {"Identity": "regressors", "Identity_1": "classificators"}


def densify_tflite(src: str, dst: str) -> int:
    """Rewrite a TFLite file whose constant weights are sparse (DENSIFY ops) with dense weights.

    tf2onnx cannot read sparse TFLite tensors (it crashes on ``pose_detection.tflite``). The
    DENSIFY ops only unpack constants, so we run the model once with every tensor preserved,
    store each DENSIFY output as a plain constant buffer and drop the DENSIFY op.
    Returns the number of ops removed.
    """
    import numpy as np
    import tensorflow as tf
    from tensorflow.lite.tools import flatbuffer_utils as fu

    it = tf.lite.Interpreter(
        model_path=src,
        experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], np.zeros(inp["shape"], np.float32))
    it.invoke()

    model = fu.read_model(src)
    g = model.subgraphs[0]
    densify = fu.schema_fb.BuiltinOperator.DENSIFY

    def is_densify(op) -> bool:
        code = model.operatorCodes[op.opcodeIndex]
        return max(code.builtinCode, code.deprecatedBuiltinCode) == densify

    kept, removed = [], 0
    for op in g.operators:
        if not is_densify(op):
            kept.append(op)
            continue
        out = op.outputs[0]
        dense = np.ascontiguousarray(it.get_tensor(out))
        buf = fu.schema_fb.BufferT()
        buf.data = np.frombuffer(dense.tobytes(), dtype=np.uint8)
        model.buffers.append(buf)
        g.tensors[out].buffer = len(model.buffers) - 1
        # The now-unused sparse source tensor would still crash TFLite's tensor listing
        # (which tf2onnx calls): make it a plain dense constant too.
        src_t = g.tensors[op.inputs[0]]
        src_t.sparsity = None
        src_t.buffer = g.tensors[out].buffer
        removed += 1
    g.operators = kept
    fu.write_model(model, dst)
    return removed


def convert(tflite_path: str, out_onnx: str, keep: dict[str, str], in_range: tuple[float, float],
            doc: str, opset: int = 13) -> bool:
    """Convert one TFLite model, keep/rename outputs, store weights as fp16, check against TFLite."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx

    original = tflite_path
    print(tflite_path, "sha256", hashlib.sha256(open(tflite_path, "rb").read()).hexdigest())
    tmpdir = tempfile.TemporaryDirectory()
    dense_path = os.path.join(tmpdir.name, "dense.tflite")
    n = densify_tflite(tflite_path, dense_path)
    if n:
        print(f"  replaced {n} DENSIFY ops (sparse weights) by dense constants")
        tflite_path = dense_path

    # Reference outputs from the TFLite interpreter (on the original file).
    it = tf.lite.Interpreter(
        model_path=original,
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    rng = np.random.default_rng(0)
    x = rng.uniform(in_range[0], in_range[1], tuple(inp["shape"])).astype(np.float32)
    it.set_tensor(inp["index"], x)
    it.invoke()
    ref = {d["name"]: it.get_tensor(d["index"]).copy() for d in it.get_output_details()}

    model_proto, _ = tf2onnx.convert.from_tflite(tflite_path, opset=opset)
    in_name = model_proto.graph.input[0].name
    print("  tf2onnx graph: in", in_name, "outs", [o.name for o in model_proto.graph.output])

    # Prune to the outputs we use (for the landmark model this drops the segmentation decoder).
    with tempfile.TemporaryDirectory() as td:
        full, cut = f"{td}/full.onnx", f"{td}/cut.onnx"
        onnx.save(model_proto, full)
        onnx.utils.extract_model(full, cut, [in_name], list(keep))
        model = onnx.load(cut)
    ren = dict(keep)
    ren[in_name] = "image"
    for node in model.graph.node:
        node.input[:] = [ren.get(n, n) for n in node.input]
        node.output[:] = [ren.get(n, n) for n in node.output]
    for vi in list(model.graph.input) + list(model.graph.output):
        vi.name = ren.get(vi.name, vi.name)
    model.doc_string = doc
    store_weights_fp16(model)  # lossless here: the TFLite weights are float16 already
    onnx.checker.check_model(model)
    onnx.save(model, out_onnx)

    sess = ort.InferenceSession(out_onnx, providers=["CPUExecutionProvider"])
    outs = sess.run(list(keep.values()), {"image": x})
    worst = 0.0
    for (tfl_name, onnx_name), got in zip(keep.items(), outs):
        d = float(np.abs(got.reshape(ref[tfl_name].shape) - ref[tfl_name]).max())
        scale = float(np.abs(ref[tfl_name]).max())
        print(f"  {onnx_name:14s} {got.shape} max|onnx-tflite| {d:.3g} (max |ref| {scale:.3g})")
        worst = max(worst, d / (scale + 0.1))
    if worst > 1e-3:
        print("MISMATCH", file=sys.stderr)
        return False
    print("  wrote", out_onnx, "sha256", hashlib.sha256(open(out_onnx, "rb").read()).hexdigest())
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mediapipe_root", help="folder holding the unzipped mediapipe wheel's 'mediapipe' package")
    ap.add_argument("out_dir")
    ap.add_argument("--opset", type=int, default=13)
    args = ap.parse_args(argv)
    mods = os.path.join(args.mediapipe_root, "mediapipe", "modules")
    ok = convert(
        os.path.join(mods, "pose_landmark", "pose_landmark_full.tflite"),
        os.path.join(args.out_dir, "pose_landmark_full.onnx"),
        LANDMARK_OUTPUTS,
        (0.0, 1.0),
        "MediaPipe BlazePose pose_landmark_full (Apache-2.0) from PyPI wheel mediapipe==0.10.21; "
        "input RGB [0,1] 1x256x256x3 NHWC; landmarks 39x(x,y,z,vis_logit,pres_logit) in input px; "
        "pose_flag prob; heatmap 64x64x39 logits; world 39x3 metres",
        args.opset,
    )
    ok &= convert(
        os.path.join(mods, "pose_detection", "pose_detection.tflite"),
        os.path.join(args.out_dir, "pose_detection.onnx"),
        DETECTION_OUTPUTS,
        (-1.0, 1.0),
        "MediaPipe BlazePose pose_detection (Apache-2.0) from PyPI wheel mediapipe==0.10.21; "
        "input RGB [-1,1] 1x224x224x3 NHWC; regressors 2254x12 (box cx,cy,w,h + 4 keypoints x,y, "
        "in input px relative to anchors); classificators 2254x1 logits",
        args.opset,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
