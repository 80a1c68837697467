"""Shared by the conversion scripts: halve ONNX files by storing weights as float16; file hashes."""

import hashlib


def sha256_of(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def store_weights_fp16(model, min_size: int = 1024):
    """Store big float32 initializers as float16 + a Cast back to float32 (halves the file).

    onnxruntime constant-folds the Casts when the session is created, so inference still runs
    in float32 at full speed; only the stored weights are rounded to float16.
    """
    import numpy as np
    from onnx import helper, numpy_helper

    g = model.graph
    casts = []
    for init in list(g.initializer):
        arr = numpy_helper.to_array(init)
        if arr.dtype != np.float32 or arr.size < min_size:
            continue
        half = numpy_helper.from_array(arr.astype(np.float16), init.name + "__fp16")
        g.initializer.remove(init)
        g.initializer.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=1, name=init.name + "__cast"))
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    return model


def save_fp16(model, out: str):
    """Check `model`, store its weights as float16 and save it at `out` -> (an onnxruntime session
    on the float32 model, one on the saved file), for the scripts to compare on a test input."""
    import onnx
    import onnxruntime as ort

    cpu = ["CPUExecutionProvider"]
    onnx.checker.check_model(model)
    reference = ort.InferenceSession(model.SerializeToString(), providers=cpu)
    store_weights_fp16(model)
    onnx.checker.check_model(model)
    onnx.save(model, out)
    return reference, ort.InferenceSession(out, providers=cpu)
