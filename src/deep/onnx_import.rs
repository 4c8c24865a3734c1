//! VGG-16 weights from an ONNX model, as torchvision or Keras (through tf2onnx) export it, into our
//! torchvision-named tensors (`alnrisk import-weights --onnx model.onnx -o vgg16.safetensors`).
//!
//! - **Reading.** An ONNX file is a protobuf `ModelProto`; the module `wire` reads the wire format and only the fields used
//!   here (graph → nodes and initializers; node → op type, name, inputs, outputs, integer attributes; tensor →
//!   name, dims, type, `raw_data` or `float_data`). Weights stored outside the file (ONNX external data) are
//!   refused with that reason.
//! - **The trunk.** The graph's `Conv` and `MaxPool` nodes, in graph order, must follow VGG-16's plan
//!   (2, 2, 3, 3, 3 convolutions, each block ended by a pool); each convolution 3×3, stride 1, padding 1, no
//!   groups or dilation, followed by a `Relu`, its kernel an initializer `C_out × C_in × 3 × 3` (ONNX's layout
//!   is torchvision's whatever framework exported it: tf2onnx turns a Keras model's channels-last kernels into
//!   it and puts a `Transpose` at the input), with the first taking 3 channels and each the previous one's
//!   output. Channel widths are read from the kernels, so a reduced-width VGG-16 imports too.
//! - **The classifier.** The dense layers after the last pool (`Gemm`, or `MatMul` + `Add` as tf2onnx writes
//!   them) import as fc6, fc7 and fc8 when there are three and their sizes are VGG's: fc6 takes the flattened
//!   pool5 (`C × 7 × 7`), fc7 is square, fc8 any number of classes. A `Transpose` between the last pool and the
//!   flatten (Keras flattens channels-last) puts fc6's inputs in `(h, w, c)` order; they are reordered to
//!   PyTorch's `(c, h, w)`. Any other classifier (another width, batch normalisation between the layers, more or
//!   fewer layers) is left out and [`Imported::notes`] says why: the trunk alone is what `fit --cnn-init` needs,
//!   which gives the new classifier its seeded initialisation.
//!
//! Every refusal names the node or tensor and what VGG-16 has instead.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};

/// VGG-16's convolutions per block.
const BLOCKS: [usize; 5] = [2, 2, 3, 3, 3];

/// What an import found.
#[derive(Debug)]
pub struct Imported {
    /// torchvision-named tensors (`features.N.weight/bias`, and `classifier.{0,3,6}.weight/bias` when the
    /// classifier is VGG's).
    pub tensors: HashMap<String, Tensor>,
    /// Output channels of the 13 convolutions.
    pub widths: Vec<usize>,
    /// Whether the classifier was imported.
    pub classifier: bool,
    /// What was left out, and why.
    pub notes: Vec<String>,
}

/// Import the VGG-16 of the ONNX file at `path`.
pub fn import(path: &Path) -> Result<Imported> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let graph = Graph::parse(&bytes).map_err(|reason| refused(path, reason))?;
    build(&graph).map_err(|reason| refused(path, reason))
}

fn refused(path: &Path, reason: String) -> Error {
    Error::Weights {
        path: path.to_path_buf(),
        reason: format!("ONNX import: {reason}"),
    }
}

/// One node of the graph (the fields the import reads).
#[derive(Debug, Default)]
struct Node {
    op: String,
    name: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    /// Integer and integer-list attributes.
    ints: HashMap<String, Vec<i64>>,
    /// String attributes (`auto_pad`).
    strings: HashMap<String, String>,
}

impl Node {
    fn label(&self) -> String {
        if self.name.is_empty() {
            format!(
                "{} node writing '{}'",
                self.op,
                self.outputs.first().map_or("", String::as_str)
            )
        } else {
            format!("{} node '{}'", self.op, self.name)
        }
    }

    fn ints_or(&self, key: &str, default: &[i64]) -> Vec<i64> {
        self.ints.get(key).cloned().unwrap_or_else(|| default.to_vec())
    }
}

/// An initializer as f32 values.
#[derive(Debug)]
struct Initializer {
    dims: Vec<usize>,
    values: Vec<f32>,
}

#[derive(Debug, Default)]
struct Graph {
    nodes: Vec<Node>,
    initializers: HashMap<String, Initializer>,
}

impl Graph {
    fn parse(bytes: &[u8]) -> std::result::Result<Graph, String> {
        let mut graph_bytes = None;
        for field in wire::Fields::new(bytes) {
            let (number, value) = field?;
            if number == 7 {
                graph_bytes = Some(value.bytes("ModelProto.graph")?);
            }
        }
        let graph_bytes = graph_bytes.ok_or("not an ONNX model (no graph)")?;
        let mut g = Graph::default();
        for field in wire::Fields::new(graph_bytes) {
            match field? {
                (1, v) => g.nodes.push(parse_node(v.bytes("GraphProto.node")?)?),
                (5, v) => {
                    let (name, init) = parse_tensor(v.bytes("GraphProto.initializer")?)?;
                    if let Some(init) = init {
                        g.initializers.insert(name, init);
                    }
                }
                _ => {}
            }
        }
        Ok(g)
    }

    fn consumers<'a>(&'a self, output: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.nodes.iter().filter(move |n| n.inputs.iter().any(|i| i == output))
    }

    fn init(&self, node: &Node, input: usize, what: &str) -> std::result::Result<&Initializer, String> {
        let name = node
            .inputs
            .get(input)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| format!("{} has no {what}", node.label()))?;
        self.initializers.get(name).ok_or_else(|| {
            format!(
                "{}: its {what} '{name}' is computed, not a stored initializer",
                node.label()
            )
        })
    }
}

fn parse_node(bytes: &[u8]) -> std::result::Result<Node, String> {
    let mut n = Node::default();
    for field in wire::Fields::new(bytes) {
        match field? {
            (1, v) => n.inputs.push(v.text("NodeProto.input")?),
            (2, v) => n.outputs.push(v.text("NodeProto.output")?),
            (3, v) => n.name = v.text("NodeProto.name")?,
            (4, v) => n.op = v.text("NodeProto.op_type")?,
            (5, v) => {
                let (name, ints, string) = parse_attribute(v.bytes("NodeProto.attribute")?)?;
                if let Some(s) = string {
                    n.strings.insert(name.clone(), s);
                }
                if !ints.is_empty() {
                    n.ints.insert(name, ints);
                }
            }
            _ => {}
        }
    }
    Ok(n)
}

/// An attribute's name, its integer values (`i` or `ints`) and its string (`s`).
fn parse_attribute(bytes: &[u8]) -> std::result::Result<(String, Vec<i64>, Option<String>), String> {
    let (mut name, mut ints, mut string) = (String::new(), Vec::new(), None);
    for field in wire::Fields::new(bytes) {
        match field? {
            (1, v) => name = v.text("AttributeProto.name")?,
            (3, v) => ints.push(v.varint("AttributeProto.i")? as i64),
            (4, v) => string = Some(v.text("AttributeProto.s")?),
            (8, wire::Value::Bytes(packed)) => {
                for x in wire::packed_varints(packed) {
                    ints.push(x? as i64);
                }
            }
            (8, v) => ints.push(v.varint("AttributeProto.ints")? as i64),
            _ => {}
        }
    }
    Ok((name, ints, string))
}

/// ONNX TensorProto data types read here.
const FLOAT: u64 = 1;
const DOUBLE: u64 = 11;

/// A tensor's name and, for a floating-point tensor, its values (`None` for other types, which VGG's weights
/// never are: shape constants and the like).
fn parse_tensor(bytes: &[u8]) -> std::result::Result<(String, Option<Initializer>), String> {
    let (mut name, mut dims, mut data_type) = (String::new(), Vec::new(), 0);
    let (mut raw, mut floats, mut doubles, mut external) = (None, Vec::new(), Vec::new(), false);
    for field in wire::Fields::new(bytes) {
        match field? {
            (1, wire::Value::Bytes(packed)) => {
                for d in wire::packed_varints(packed) {
                    dims.push(d?);
                }
            }
            (1, v) => dims.push(v.varint("TensorProto.dims")?),
            (2, v) => data_type = v.varint("TensorProto.data_type")?,
            (4, wire::Value::Bytes(packed)) => floats.extend(
                packed
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            ),
            (4, wire::Value::Fixed32(bits)) => floats.push(f32::from_bits(bits)),
            (8, v) => name = v.text("TensorProto.name")?,
            (9, v) => raw = Some(v.bytes("TensorProto.raw_data")?),
            (10, wire::Value::Bytes(packed)) => doubles.extend(packed.chunks_exact(8).map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                f64::from_le_bytes(b)
            })),
            (10, wire::Value::Fixed64(bits)) => doubles.push(f64::from_bits(bits)),
            (13, _) => external = true,
            (14, v) => external |= v.varint("TensorProto.data_location")? == 1,
            _ => {}
        }
    }
    if data_type != FLOAT && data_type != DOUBLE {
        return Ok((name, None));
    }
    if external {
        return Err(format!(
            "tensor '{name}' is stored outside the file (ONNX external data); save the model with its weights inside"
        ));
    }
    let dims: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
    let values: Vec<f32> = match (raw, data_type) {
        (Some(r), FLOAT) => r
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        (Some(r), _) => r
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                f64::from_le_bytes(b) as f32
            })
            .collect(),
        (None, FLOAT) => floats,
        (None, _) => doubles.into_iter().map(|v| v as f32).collect(),
    };
    let expected: usize = dims.iter().product();
    if values.len() != expected {
        return Err(format!(
            "tensor '{name}' holds {} values for dims {dims:?} ({expected})",
            values.len()
        ));
    }
    Ok((name, Some(Initializer { dims, values })))
}

/// A dense layer found after the last pool: `out × in` weights (torchvision's layout) and bias.
struct DenseFound {
    label: String,
    n_in: usize,
    n_out: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

fn build(g: &Graph) -> std::result::Result<Imported, String> {
    // the trunk: Conv and MaxPool in graph order against VGG-16's plan
    let mut steps = g.nodes.iter().filter(|n| n.op == "Conv" || n.op == "MaxPool");
    let (mut tensors, mut widths) = (HashMap::new(), Vec::new());
    let (mut index, mut cin) = (0usize, 3usize);
    let mut last_pool: Option<&Node> = None;
    for (block, &convs) in BLOCKS.iter().enumerate() {
        for k in 0..convs {
            let what = format!("block {} convolution {}", block + 1, k + 1);
            let n = steps
                .next()
                .ok_or_else(|| format!("the graph ends before VGG-16's {what}"))?;
            if n.op != "Conv" {
                return Err(format!("{} stands where VGG-16 has its {what}", n.label()));
            }
            check_conv(n)?;
            let w = g.init(n, 1, "kernel")?;
            let [cout, c_in, 3, 3] = w.dims[..] else {
                return Err(format!(
                    "{}: kernel dims {:?}, VGG-16 has C_out × C_in × 3 × 3",
                    n.label(),
                    w.dims
                ));
            };
            if c_in != cin {
                return Err(format!(
                    "{}: takes {c_in} channels, the layer before gives {cin}",
                    n.label()
                ));
            }
            let bias = match n.inputs.get(2).filter(|b| !b.is_empty()) {
                Some(_) => g.init(n, 2, "bias")?.values.clone(),
                None => vec![0.0; cout],
            };
            if bias.len() != cout {
                return Err(format!(
                    "{}: bias of {} values for {cout} channels",
                    n.label(),
                    bias.len()
                ));
            }
            let out = n.outputs.first().map(String::as_str).unwrap_or_default();
            if !g.consumers(out).any(|c| c.op == "Relu") {
                return Err(format!(
                    "{}: not followed by a Relu, as VGG-16's convolutions are",
                    n.label()
                ));
            }
            tensors.insert(
                format!("features.{index}.weight"),
                tensor(&w.values, &[cout, cin, 3, 3])?,
            );
            tensors.insert(format!("features.{index}.bias"), tensor(&bias, &[cout])?);
            widths.push(cout);
            cin = cout;
            index += 2;
        }
        let n = steps
            .next()
            .ok_or_else(|| format!("the graph ends before VGG-16's pool after block {}", block + 1))?;
        if n.op != "MaxPool" {
            return Err(format!(
                "{} stands where VGG-16 pools after block {}",
                n.label(),
                block + 1
            ));
        }
        let (kernel, strides) = (n.ints_or("kernel_shape", &[]), n.ints_or("strides", &[1, 1]));
        if kernel != [2, 2] || strides != [2, 2] {
            return Err(format!(
                "{}: kernel {kernel:?} stride {strides:?}, VGG-16 pools 2×2 with stride 2",
                n.label()
            ));
        }
        index += 1;
        last_pool = Some(n);
    }
    if let Some(extra) = steps.next() {
        return Err(format!(
            "{} follows VGG-16's 13 convolutions and 5 pools",
            extra.label()
        ));
    }
    let mut imported = Imported {
        tensors,
        widths,
        classifier: false,
        notes: Vec::new(),
    };
    // the classifier
    let Some(pool) = last_pool else {
        return Ok(imported);
    };
    let after: Vec<&Node> = g.nodes.iter().skip_while(|n| !std::ptr::eq(*n, pool)).skip(1).collect();
    let channels_last = after
        .iter()
        .take_while(|n| n.op != "Gemm" && n.op != "MatMul")
        .any(|n| n.op == "Transpose" && n.ints_or("perm", &[]) == [0, 2, 3, 1]);
    let dense = dense_layers(g, &after)?;
    let last = cin;
    let fits = dense.len() == 3
        && dense[0].n_in == last * 49
        && dense[1].n_in == dense[0].n_out
        && dense[1].n_out == dense[0].n_out
        && dense[2].n_in == dense[1].n_out
        && !after.iter().any(|n| normalises(g, n));
    if !fits {
        let found: Vec<String> = dense
            .iter()
            .map(|d| format!("{} ({} → {})", d.label, d.n_in, d.n_out))
            .collect();
        imported.notes.push(format!(
            "classifier left out: VGG-16 has three dense layers {} → H → H → classes with nothing between them; this \
             model has {}{}. The trunk alone is imported: fit --cnn-init gives the classifier its seeded \
             initialisation",
            last * 49,
            if found.is_empty() {
                "none".to_string()
            } else {
                found.join(", ")
            },
            if after.iter().any(|n| normalises(g, n)) {
                ", with batch normalisation between them"
            } else {
                ""
            }
        ));
        return Ok(imported);
    }
    for (d, index) in dense.into_iter().zip([0, 3, 6]) {
        let mut weight = d.weight;
        if index == 0 && channels_last {
            weight = hwc_columns_to_chw(&weight, d.n_out, last, 7, 7);
            imported
                .notes
                .push("fc6's inputs reordered from channels-last (h, w, c) to PyTorch's (c, h, w)".into());
        }
        imported.tensors.insert(
            format!("classifier.{index}.weight"),
            tensor(&weight, &[d.n_out, d.n_in])?,
        );
        imported
            .tensors
            .insert(format!("classifier.{index}.bias"), tensor(&d.bias, &[d.n_out])?);
    }
    imported.classifier = true;
    Ok(imported)
}

/// A batch normalisation between dense layers: the op itself, or the `Mul` by a stored float vector that tf2onnx
/// folds it into (shape arithmetic multiplies integers, which are not kept as initializers).
fn normalises(g: &Graph, n: &Node) -> bool {
    n.op == "BatchNormalization" || (n.op == "Mul" && n.inputs.iter().any(|i| g.initializers.contains_key(i)))
}

fn check_conv(n: &Node) -> std::result::Result<(), String> {
    let kernel = n.ints_or("kernel_shape", &[3, 3]);
    let strides = n.ints_or("strides", &[1, 1]);
    let dilations = n.ints_or("dilations", &[1, 1]);
    let group = n.ints_or("group", &[1]);
    let same = n
        .strings
        .get("auto_pad")
        .is_some_and(|p| p == "SAME_UPPER" || p == "SAME_LOWER");
    let pads = n.ints_or("pads", &[0, 0, 0, 0]);
    let problems: Vec<String> = [
        (kernel != [3, 3]).then(|| format!("kernel {kernel:?} (VGG-16: 3×3)")),
        (strides != [1, 1]).then(|| format!("strides {strides:?} (1)")),
        (dilations != [1, 1]).then(|| format!("dilations {dilations:?} (1)")),
        (group != [1]).then(|| format!("group {group:?} (1)")),
        (!same && pads != [1, 1, 1, 1]).then(|| format!("pads {pads:?} (1 on every side)")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {}", n.label(), problems.join(", ")))
    }
}

/// The dense layers among `after` (the nodes after the last pool), as `out × in` weights.
fn dense_layers(g: &Graph, after: &[&Node]) -> std::result::Result<Vec<DenseFound>, String> {
    let mut found = Vec::new();
    for n in after {
        let (weight, n_in, n_out, bias) = match n.op.as_str() {
            "Gemm" => {
                let w = g.init(n, 1, "weight")?;
                let [a, b] = w.dims[..] else {
                    return Err(format!("{}: weight dims {:?}", n.label(), w.dims));
                };
                let trans_b = n.ints_or("transB", &[0]) == [1];
                let (n_in, n_out) = if trans_b { (b, a) } else { (a, b) };
                let weight = if trans_b {
                    w.values.clone()
                } else {
                    transpose(&w.values, a, b)
                };
                let bias = match n.inputs.get(2).filter(|s| !s.is_empty()) {
                    Some(_) => g.init(n, 2, "bias")?.values.clone(),
                    None => vec![0.0; n_out],
                };
                (weight, n_in, n_out, bias)
            }
            "MatMul" => {
                let w = g.init(n, 1, "weight")?;
                let [a, b] = w.dims[..] else {
                    return Err(format!("{}: weight dims {:?}", n.label(), w.dims));
                };
                // the bias: an Add of an initializer consuming the product
                let out = n.outputs.first().map(String::as_str).unwrap_or_default();
                let bias = g
                    .consumers(out)
                    .filter(|c| c.op == "Add")
                    .find_map(|c| c.inputs.iter().find_map(|i| g.initializers.get(i)))
                    .map(|b| b.values.clone())
                    .unwrap_or_else(|| vec![0.0; b]);
                (transpose(&w.values, a, b), a, b, bias)
            }
            _ => continue,
        };
        if bias.len() != n_out {
            return Err(format!(
                "{}: bias of {} values for {n_out} outputs",
                n.label(),
                bias.len()
            ));
        }
        found.push(DenseFound {
            label: n.label(),
            n_in,
            n_out,
            weight,
            bias,
        });
    }
    Ok(found)
}

/// `rows × cols` row-major → `cols × rows` row-major.
fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
}

/// fc6's `n_out × (h·w·c)` weights with inputs in `(h, w, c)` order → inputs in `(c, h, w)` order.
fn hwc_columns_to_chw(w: &[f32], n_out: usize, c: usize, h: usize, wd: usize) -> Vec<f32> {
    let n_in = c * h * wd;
    let mut out = vec![0f32; w.len()];
    for o in 0..n_out {
        for y in 0..h {
            for x in 0..wd {
                for ch in 0..c {
                    out[o * n_in + (ch * h + y) * wd + x] = w[o * n_in + (y * wd + x) * c + ch];
                }
            }
        }
    }
    out
}

fn tensor(values: &[f32], shape: &[usize]) -> std::result::Result<Tensor, String> {
    Tensor::from_vec(values.to_vec(), shape, &Device::Cpu).map_err(|e| e.to_string())
}

/// The protobuf wire format (the subset ONNX files use): fields as `(number, value)`.
mod wire {
    /// One field's value.
    #[derive(Debug, Clone, Copy)]
    pub enum Value<'a> {
        /// Wire type 0.
        Varint(u64),
        /// Wire type 1.
        Fixed64(u64),
        /// Wire type 2: a string, bytes, a sub-message or a packed repeated field.
        Bytes(&'a [u8]),
        /// Wire type 5.
        Fixed32(u32),
    }

    impl<'a> Value<'a> {
        pub fn bytes(self, field: &str) -> Result<&'a [u8], String> {
            match self {
                Value::Bytes(b) => Ok(b),
                other => Err(format!("{field}: expected bytes, found {other:?}")),
            }
        }

        pub fn text(self, field: &str) -> Result<String, String> {
            String::from_utf8(self.bytes(field)?.to_vec()).map_err(|_| format!("{field}: not UTF-8"))
        }

        pub fn varint(self, field: &str) -> Result<u64, String> {
            match self {
                Value::Varint(v) => Ok(v),
                other => Err(format!("{field}: expected a varint, found {other:?}")),
            }
        }
    }

    /// The fields of one message, in order; a truncated or malformed message ends with an error.
    pub struct Fields<'a> {
        buf: &'a [u8],
        pos: usize,
        failed: bool,
    }

    impl<'a> Fields<'a> {
        pub fn new(buf: &'a [u8]) -> Self {
            Fields {
                buf,
                pos: 0,
                failed: false,
            }
        }

        fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
            let end = self
                .pos
                .checked_add(n)
                .filter(|&e| e <= self.buf.len())
                .ok_or("truncated protobuf message")?;
            let s = &self.buf[self.pos..end];
            self.pos = end;
            Ok(s)
        }

        fn field(&mut self) -> Result<(u32, Value<'a>), String> {
            let key = read_varint(self.buf, &mut self.pos)?;
            let number = u32::try_from(key >> 3).map_err(|_| "field number out of range")?;
            let value = match key & 7 {
                0 => Value::Varint(read_varint(self.buf, &mut self.pos)?),
                1 => {
                    let b = self.take(8)?;
                    Value::Fixed64(u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                }
                2 => {
                    let len =
                        usize::try_from(read_varint(self.buf, &mut self.pos)?).map_err(|_| "length out of range")?;
                    Value::Bytes(self.take(len)?)
                }
                5 => {
                    let b = self.take(4)?;
                    Value::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                }
                t => return Err(format!("unsupported protobuf wire type {t}")),
            };
            Ok((number, value))
        }
    }

    impl<'a> Iterator for Fields<'a> {
        type Item = Result<(u32, Value<'a>), String>;

        fn next(&mut self) -> Option<Self::Item> {
            if self.failed || self.pos >= self.buf.len() {
                return None;
            }
            let f = self.field();
            self.failed = f.is_err();
            Some(f)
        }
    }

    fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *buf.get(*pos).ok_or("truncated varint")?;
            *pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    /// The values of a packed repeated varint field.
    pub fn packed_varints(buf: &[u8]) -> impl Iterator<Item = Result<u64, String>> + '_ {
        let mut pos = 0;
        std::iter::from_fn(move || (pos < buf.len()).then(|| read_varint(buf, &mut pos)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_fields_read_as_the_protobuf_encoding_guide_writes_them() {
        // the guide's examples: 150 in field 1 is 08 96 01; "testing" in field 2 is 12 07 74 65 73 74 69 6e 67
        let mut msg = vec![0x08, 0x96, 0x01, 0x12, 0x07];
        msg.extend_from_slice(b"testing");
        let fields: Vec<_> = wire::Fields::new(&msg).collect::<std::result::Result<_, _>>().unwrap();
        assert!(matches!(fields[0], (1, wire::Value::Varint(150))));
        assert_eq!(fields[1].1.text("f").unwrap(), "testing");
        // packed 3, 270, 86942 (the guide's packed example)
        let packed = [0x03, 0x8e, 0x02, 0x9e, 0xa7, 0x05];
        let v: Vec<u64> = wire::packed_varints(&packed)
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        assert_eq!(v, [3, 270, 86942]);
        // a truncated message is an error, not a panic
        let cut = &msg[..msg.len() - 2];
        assert!(wire::Fields::new(cut).any(|f| f.is_err()));
        assert!(Graph::parse(&[0x3a, 0x05, 0x0a]).is_err());
    }

    #[test]
    fn channels_last_fc6_inputs_are_reordered_to_pytorch_s_flatten() {
        // one output, c = 2, h = w = 2: the input (y, x, ch) at hwc position (y·2 + x)·2 + ch holds 100·ch + 10·y + x
        let (c, h, w) = (2, 2, 2);
        let mut hwc = vec![0f32; c * h * w];
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    hwc[(y * w + x) * c + ch] = (100 * ch + 10 * y + x) as f32;
                }
            }
        }
        let chw = hwc_columns_to_chw(&hwc, 1, c, h, w);
        assert_eq!(chw, [0.0, 1.0, 10.0, 11.0, 100.0, 101.0, 110.0, 111.0]);
        assert_eq!(
            transpose(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3),
            [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
    }
}
