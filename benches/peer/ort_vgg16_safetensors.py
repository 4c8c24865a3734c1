"""onnxruntime on the same VGG-16 as alnrisk, for `cargo bench --bench vgg -- --vs-onnxruntime VENV`.

Usage: VENV/bin/python ort_vgg16_safetensors.py WEIGHTS.safetensors INPUT.safetensors OUT_DIR THREADS
(VENV: `python3 -m venv VENV && VENV/bin/pip install onnxruntime onnx numpy`; nothing is installed at run time.)

- WEIGHTS: torchvision-named VGG-16 weights (`features.N.weight`, `classifier.N.weight`, f32) as alnrisk writes
  them. They are exported here to OUT_DIR/vgg16_fc7.onnx with onnx.helper: the 13 3×3 convolutions with ReLU,
  the 5 max-pools, adaptive average pooling to 7×7 (an identity at 224×224, so left out), flatten, fc6 and fc7
  with ReLU (Gemm, transB=1, the torchvision layout). The output is fc7 after its ReLU, as alnrisk's `fc7`.
- INPUT: `input` (16×3×224×224, f32) and `fc7` (alnrisk's fc7 of the first image, f32): the export is checked
  against alnrisk (cosine) before anything is timed.
- Timed: batch 1 and batch 16 (the first image, and all 16), f32, with the fully connected layers quantized to
  int8 by onnxruntime.quantization.quantize_dynamic (per-channel weights, as a user of onnxruntime quantizes a
  model for the CPU without calibration data), and with the convolutions quantized too, each after a warm-up; median of 9 (batch 1) or 3 (batch 16), intra-op THREADS threads.
Prints one JSON line: {"onnxruntime": version, "rows": [{"precision", "batch", "ms", "cosine_vs_alnrisk"}]}.
"""
import json
import os
import struct
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

PLAN = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def read_safetensors(path):
    """The safetensors format: an 8-byte little-endian header length, a JSON header, then the raw tensors."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        assert meta["dtype"] == "F32", (name, meta["dtype"])
        a, b = meta["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype="<f4").reshape(meta["shape"])
    return out


def export(weights, path):
    # torchvision numbering: a convolution is features.N and its ReLU N+1; a pool is one index
    nodes, inits, x, idx = [], [], "input", 0
    for step in PLAN:
        if step == "M":
            nodes.append(helper.make_node("MaxPool", [x], [f"pool{idx}"], kernel_shape=[2, 2], strides=[2, 2]))
            x = f"pool{idx}"
            idx += 1
        else:
            w, b = f"features.{idx}.weight", f"features.{idx}.bias"
            inits += [numpy_helper.from_array(weights[w], w), numpy_helper.from_array(weights[b], b)]
            nodes.append(helper.make_node("Conv", [x, w, b], [f"conv{idx}"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
            nodes.append(helper.make_node("Relu", [f"conv{idx}"], [f"relu{idx}"]))
            x = f"relu{idx}"
            idx += 2
    nodes.append(helper.make_node("Flatten", [x], ["flat"], axis=1))
    x = "flat"
    for i, name in ((0, "fc6"), (3, "fc7")):
        w, b = f"classifier.{i}.weight", f"classifier.{i}.bias"
        inits += [numpy_helper.from_array(weights[w], w), numpy_helper.from_array(weights[b], b)]
        nodes.append(helper.make_node("Gemm", [x, w, b], [f"{name}_linear"], transB=1))
        nodes.append(helper.make_node("Relu", [f"{name}_linear"], [name]))
        x = name
    graph = helper.make_graph(
        nodes, "vgg16_fc7",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", 4096])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)


def cosine(a, b):
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def main():
    weights_path, input_path, out_dir, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    weights = read_safetensors(weights_path)
    given = read_safetensors(input_path)
    f32_path = os.path.join(out_dir, "vgg16_fc7.onnx")
    export(weights, f32_path)
    del weights
    from onnxruntime.quantization import QuantType, quantize_dynamic
    int8_path = os.path.join(out_dir, "vgg16_fc7_int8_fc.onnx")
    quantize_dynamic(f32_path, int8_path, op_types_to_quantize=["Gemm", "MatMul"], per_channel=True,
                     weight_type=QuantType.QInt8)
    int8_all_path = os.path.join(out_dir, "vgg16_fc7_int8_conv_fc.onnx")
    quantize_dynamic(f32_path, int8_all_path, op_types_to_quantize=["Conv", "Gemm", "MatMul"], per_channel=True,
                     weight_type=QuantType.QInt8)
    rows = []
    for precision, path in (("f32", f32_path), ("int8 fc (quantize_dynamic)", int8_path),
                            ("int8 conv+fc (quantize_dynamic)", int8_all_path)):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        for batch, reps in ((1, 9), (16, 3)):
            x = np.ascontiguousarray(given["input"][:batch])
            out = sess.run(None, {"input": x})[0]
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                sess.run(None, {"input": x})
                times.append(time.perf_counter() - t0)
            rows.append({"precision": precision, "batch": batch, "ms": 1e3 * float(np.median(times)),
                         "cosine_vs_alnrisk": cosine(out[0], given["fc7"][0])})
        del sess
    print(json.dumps({"onnxruntime": ort.__version__, "rows": rows}), flush=True)


if __name__ == "__main__":
    main()
