#!/usr/bin/env python3
"""Writes small TensorFlow SavedModels that exercise the hard cases of finetune's function flattener.

The flattener turns a SavedModel's serving signature into one flat GraphDef: starting from the
signature's call node it inlines every FunctionDef the signature reaches, recursively, whether it
is reached through PartitionedCall / StatefulPartitionedCall, through a node whose op type is a
library function's name (a "direct" call), or as the branch of an If / StatelessIf. The Keras
fixtures in savedmodels/ hit only the easy paths, so this script writes tiny, hand-made
``tf.Module`` models, each built around one hard case:

  nested_calls     a tf.function calling a tf.function calling a tf.function (dense layers whose
                   variables are captured resources passed down through every call), the innermost
                   one called from two places (one FunctionDef inlined twice), plus a direct call
                   of a TF1 ``Defun`` (a node whose op type is the function's name)
  list_outputs     Split (num_split=3) and Unpack (num=3), used only through their second and third
                   outputs, both in the serving function and in a nested function that returns
                   several outputs of which the caller uses the non-first ones
  control_deps     ``tf.control_dependencies`` and ``tf.debugging.assert_greater_equal``: control
                   inputs (``^node``) and control outputs (``control_ret``) in the function bodies,
                   an Assert guarded by an ``If``, and explicit variable reads
  custom_gradient  a ``@tf.custom_gradient`` forward pass (an IdentityN in the graph) reading a variable
  straight_through a ``@tf.custom_gradient`` whose gradient is not the forward's: the forward rounds
                   x @ kernel to quarters (Round, whose gradient is none), the gradient passes dy
                   through as if nothing were rounded (the straight-through estimator of
                   quantization-aware training)
  fake_quant       quantization-aware training as tfmot builds it: fake quantization with trained ranges
                   (FakeQuantWithMinMaxVars, per tensor and per channel) after two dense products
  cond             ``tf.cond`` on a data-dependent predicate whose branches read variables (an ``If``
                   with then/else branch functions), then one whose branches are stateless (a ``StatelessIf``);
                   the sample takes the first one's then branch and the second one's else branch
  multi_output     a signature with two inputs and two outputs

Each fixture is written as

  <out>/<name>/model/            the SavedModel (tf.saved_model.save, signatures={"serving_default": ...})
  <out>/<name>/expected.json     signatures as tf.saved_model.load reports them, the variables, a description
  <out>/<name>/sample/*.npy      a seeded input, and the output the original Python function computes for it

the same layout (and expected.json keys) as the Keras fixtures written by
scripts/export_keras_models.py, with export_path "tf_saved_model". The serving signatures take named
float32 inputs with fully known shapes and return a dict of named outputs. Variable values come from
``numpy.random.default_rng(1235)`` and sample inputs from ``numpy.random.default_rng(1234)`` (fresh
generators per fixture), so reruns give the same numbers. The script checks that the reloaded
SavedModel reproduces the Python function's output (max abs diff <= 1e-6) and that the saved graph
really contains the structure the fixture is for (nested calls not inlined, Split/Unpack, If,
IdentityN, control edges), and fails loudly otherwise. After writing, it prints the op types of the
serving function and of every function it reaches.

Fixtures that already exist are kept unless ``--force``; each is written into a temporary sibling
directory and renamed into place. The numbers are reproducible; the generated function names
(``__inference_serve_<n>``) depend on what else the process traced first, so only a full
``--force`` rerun reproduces saved_model.pb byte for byte.

Usage:
  scripts/export_graph_fixtures.py [--out graphs] [--fixtures a,b,...] [--force] [--list]
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.core.protobuf import saved_model_pb2  # noqa: E402

SEED = 1234  # sample inputs
VARIABLE_SEED = SEED + 1  # variable initial values
TOLERANCE = 1e-6
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def values(rng, shape, scale=0.5):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def spec(shape, name):
    return tf.TensorSpec(shape, tf.float32, name=name)


# ---------------------------------------------------------------- the fixtures


def _affine_direct(x):
    return x * 0.5 + 0.25


def make_affine_defun():
    # A TF1 Defun, called from inside a tf.function, is added as a node whose op type is the
    # function's name (no PartitionedCall): the "direct call" case. Built lazily: the module is
    # TensorFlow-internal and only this fixture needs it.
    from tensorflow.python.framework import function as tf1_function

    return tf1_function.Defun(tf.float32, func_name="affine_direct")(_affine_direct)


class NestedCalls(tf.Module):
    description = ("A tf.function (serve) calls a tf.function (block) that calls a third (dense1), each reading "
                   "variables, with dense1 also called directly from serve and block also calling a TF1 Defun "
                   "by op name.")

    def __init__(self, rng):
        super().__init__(name="nested_calls")
        self.w1 = tf.Variable(values(rng, (4, 8)), name="dense1/kernel")
        self.b1 = tf.Variable(values(rng, (8,)), name="dense1/bias")
        self.w2 = tf.Variable(values(rng, (8, 3)), name="dense2/kernel")
        self.b2 = tf.Variable(values(rng, (3,)), name="dense2/bias")
        self.scale = tf.Variable(np.array([1.5, -0.5, 2.0], np.float32), trainable=False, name="scale")
        self.affine = make_affine_defun()

    @tf.function
    def dense1(self, x):
        return tf.tanh(tf.matmul(x, self.w1) + self.b1)

    @tf.function
    def block(self, x):
        h = self.dense1(x)
        y = tf.tanh(tf.matmul(h, self.w2) + self.b2)
        z = self.affine(y)
        z.set_shape(y.shape)  # a Defun call has no shape inference
        return z

    @tf.function(input_signature=[spec([2, 4], "x")])
    def serve(self, x):
        side = tf.reduce_sum(self.dense1(x), axis=-1, keepdims=True)  # the second call site of dense1
        return {"y": self.block(x) * self.scale + side}

    inputs = {"x": [2, 4]}


class ListOutputs(tf.Module):
    description = ("Split (num_split=3) and Unpack (num=3) used only through their second and third outputs, "
                   "in the serving function and in a nested function whose non-first outputs the caller uses.")

    def __init__(self, rng):
        super().__init__(name="list_outputs")
        self.wa = tf.Variable(values(rng, (3, 2)), name="split_piece_weight")
        self.wb = tf.Variable(values(rng, (3, 2)), name="split_last_weight")
        self.wr = tf.Variable(values(rng, (6,)), name="unstack_row_weight")
        self.wn = tf.Variable(values(rng, (6,)), name="nested_row_weight")

    @tf.function
    def pieces(self, x):
        a0, a1, a2 = tf.split(x, 3, axis=1)
        r0, r1, r2 = tf.unstack(x, axis=0)
        # Four outputs: the caller uses only outputs 1 and 3.
        return a0, a2 * self.wb, r0, r2 * self.wn

    @tf.function(input_signature=[spec([3, 6], "x")])
    def serve(self, x):
        pieces = tf.split(x, 3, axis=1)  # Split, num_split=3: three [3, 2]
        rows = tf.unstack(x, axis=0)  # Unpack, num=3: three [6]
        _, nested_split, _, nested_row = self.pieces(x)
        return {
            "split": pieces[1] * self.wa + pieces[2] + nested_split,
            "rows": rows[2] * self.wr - rows[1] + nested_row,
        }

    inputs = {"x": [3, 6]}


class ControlDeps(tf.Module):
    description = ("tf.control_dependencies on a tf.debugging.assert_greater_equal (an Assert behind an If) and on "
                   "a variable read, giving control inputs and control outputs in the function bodies.")

    def __init__(self, rng):
        super().__init__(name="control_deps")
        self.w = tf.Variable(values(rng, (4, 4)), name="kernel")
        self.b = tf.Variable(values(rng, (4,)), name="bias")

    @tf.function(input_signature=[spec([2, 4], "x")])
    def serve(self, x):
        positive = tf.square(x) + 1.0
        check = tf.debugging.assert_greater_equal(positive, 1.0, message="square + 1 must be >= 1")
        bias = self.b.read_value()
        with tf.control_dependencies([check, bias]):
            kernel = self.w.read_value()
            y = tf.matmul(positive, kernel)
        with tf.control_dependencies([y]):
            z = tf.identity(tf.tanh(y + bias), name="after_matmul")
        return {"y": z}

    inputs = {"x": [2, 4]}


class CustomGradient(tf.Module):
    description = ("A @tf.custom_gradient forward pass (an IdentityN carrying _gradient_op_type) that reads a "
                   "variable; the custom gradient clips dx.")

    def __init__(self, rng):
        super().__init__(name="custom_gradient")
        self.w = tf.Variable(values(rng, (4, 3)), name="kernel")
        self.b = tf.Variable(values(rng, (3,)), name="bias")

    @tf.function(input_signature=[spec([2, 4], "x")])
    def serve(self, x):
        w = self.w

        @tf.custom_gradient
        def clipped_dense(inputs):
            out = tf.nn.softsign(tf.matmul(inputs, w))

            def grad(dy, variables=None):
                ds = dy / tf.square(1.0 + tf.abs(tf.matmul(inputs, w)))
                dx = tf.clip_by_value(tf.matmul(ds, w, transpose_b=True), -1.0, 1.0)
                dw = tf.matmul(inputs, ds, transpose_a=True)
                return dx, [dw]

            return out, grad

        return {"y": clipped_dense(x) + self.b}

    inputs = {"x": [2, 4]}


class StraightThrough(tf.Module):
    description = ("A @tf.custom_gradient that is not the forward's own: x @ kernel rounded to quarters forward, dy"
                   " passed straight through backward (the straight-through estimator).")

    def __init__(self, rng):
        super().__init__(name="straight_through")
        self.w = tf.Variable(values(rng, (4, 3)), name="kernel")
        self.b = tf.Variable(values(rng, (3,)), name="bias")

    @tf.function(input_signature=[spec([2, 4], "x")])
    def serve(self, x):
        w = self.w

        @tf.custom_gradient
        def quantized_dense(inputs):
            out = tf.round(tf.matmul(inputs, w) * 4.0) / 4.0

            def grad(dy, variables=None):
                return tf.matmul(dy, w, transpose_b=True), [tf.matmul(inputs, dy, transpose_a=True)]

            return out, grad

        return {"y": quantized_dense(x) + self.b}

    inputs = {"x": [2, 4]}


class FakeQuant(tf.Module):
    description = ("Quantization-aware training as tfmot builds it: x @ kernel fake-quantized to 8 bits in a trained"
                   " range (FakeQuantWithMinMaxVars), plus x @ kernel_2 fake-quantized per channel in trained"
                   " ranges (FakeQuantWithMinMaxVarsPerChannel), plus a bias.")

    def __init__(self, rng):
        super().__init__(name="fake_quant")
        self.w = tf.Variable(values(rng, (4, 3)), name="kernel")
        self.w2 = tf.Variable(values(rng, (4, 3)), name="kernel_2")
        self.lo = tf.Variable(-0.5, name="range_min")
        self.hi = tf.Variable(0.5, name="range_max")
        self.clo = tf.Variable([-0.4, -0.6, -0.3], name="channel_min")
        self.chi = tf.Variable([0.4, 0.3, 0.6], name="channel_max")
        self.b = tf.Variable(values(rng, (3,)), name="bias")

    @tf.function(input_signature=[spec([2, 4], "x")])
    def serve(self, x):
        a = tf.quantization.fake_quant_with_min_max_vars(tf.matmul(x, self.w), self.lo, self.hi, num_bits=8)
        c = tf.quantization.fake_quant_with_min_max_vars_per_channel(tf.matmul(x, self.w2), self.clo, self.chi,
                                                                     num_bits=8)
        return {"y": a + c + self.b}

    inputs = {"x": [2, 4]}


class Cond(tf.Module):
    description = ("tf.cond on reduce_sum(x) > 0 whose branches read different variables (an If; the sample takes "
                   "its then branch), followed by a tf.cond on reduce_mean(x) > 1 with stateless branches (a "
                   "StatelessIf; the sample takes its else branch).")

    def __init__(self, rng):
        super().__init__(name="cond")
        self.w_then = tf.Variable(values(rng, (4, 3)), name="then_kernel")
        self.w_else = tf.Variable(values(rng, (4, 3)), name="else_kernel")
        self.b_else = tf.Variable(values(rng, (3,)), name="else_bias")

    @tf.function(input_signature=[spec([2, 4], "x")])
    def serve(self, x):
        y = tf.cond(
            tf.reduce_sum(x) > 0.0,
            lambda: tf.tanh(tf.matmul(x, self.w_then)),
            lambda: tf.nn.relu(tf.matmul(x, self.w_else) + self.b_else) - 1.0,
        )
        # Branches without stateful ops: a StatelessIf. The sample takes its else branch.
        y = tf.cond(tf.reduce_mean(x) > 1.0, lambda: y * 2.0, lambda: y + 0.5)
        return {"y": y}

    inputs = {"x": [2, 4]}

    @staticmethod
    def check_sample(feeds):
        x = feeds["x"]
        require(x.sum() > 0.0 and x.mean() <= 1.0,
                "cond: the sample no longer takes the If's then branch and the StatelessIf's else branch")


class MultiOutput(tf.Module):
    description = "A signature with two inputs (features, context) and two outputs (logits, gate)."

    def __init__(self, rng):
        super().__init__(name="multi_output")
        self.wf = tf.Variable(values(rng, (4, 5)), name="features_kernel")
        self.wc = tf.Variable(values(rng, (3, 5)), name="context_kernel")
        self.bias = tf.Variable(values(rng, (5,)), name="bias")
        self.gate = tf.Variable(values(rng, (3,)), name="gate_weight")

    @tf.function(input_signature=[spec([2, 4], "features"), spec([2, 3], "context")])
    def serve(self, features, context):
        logits = tf.matmul(features, self.wf) + tf.matmul(context, self.wc) + self.bias
        gate = tf.sigmoid(tf.reduce_sum(context * self.gate, axis=-1))
        return {"logits": logits, "gate": gate}

    inputs = {"features": [2, 4], "context": [2, 3]}


FIXTURES = {
    "nested_calls": NestedCalls,
    "list_outputs": ListOutputs,
    "control_deps": ControlDeps,
    "custom_gradient": CustomGradient,
    "straight_through": StraightThrough,
    "fake_quant": FakeQuant,
    "cond": Cond,
    "multi_output": MultiOutput,
}


# ---------------------------------------------------------------- reading the saved graph


def read_meta_graph(model_dir):
    sm = saved_model_pb2.SavedModel()
    with open(os.path.join(model_dir, "saved_model.pb"), "rb") as f:
        sm.ParseFromString(f.read())
    return sm.meta_graphs[0]


def called_functions(nodes, library):
    """Names of the library functions the nodes call: through a func / list(func) attr
    (PartitionedCall, StatefulPartitionedCall, If, While, ...) or as their op type (direct call)."""
    out = []
    for node in nodes:
        if node.op in library:
            out.append(node.op)
        for key in sorted(node.attr):
            attr = node.attr[key]
            if attr.HasField("func") and attr.func.name:
                out.append(attr.func.name)
            out.extend(f.name for f in attr.list.func)
    return list(dict.fromkeys(out))


def serving_tree(meta_graph, signature="serving_default"):
    """[(depth, function name, FunctionDef)] for every function the signature reaches, depth first;
    a function reached again is listed once, where first reached."""
    library = {f.signature.name: f for f in meta_graph.graph_def.library.function}
    by_name = {n.name: n for n in meta_graph.graph_def.node}
    sig = meta_graph.signature_def[signature]
    roots = [by_name[t.name.split(":")[0].lstrip("^")] for t in sig.outputs.values()]
    out, seen = [], set()

    def visit(name, depth):
        if name in seen:
            return
        seen.add(name)
        fn = library[name]
        out.append((depth, name, fn))
        for callee in called_functions(fn.node_def, library):
            visit(callee, depth + 1)

    for name in called_functions(roots, library):
        visit(name, 0)
    return out


def op_types(fn):
    counts = {}
    for node in fn.node_def:
        counts[node.op] = counts.get(node.op, 0) + 1
    return counts


def describe_structure(meta_graph):
    lines = []
    for depth, name, fn in serving_tree(meta_graph):
        ops = ", ".join(f"{op} x{n}" if n > 1 else op for op, n in sorted(op_types(fn).items()))
        extra = ""
        if fn.control_ret:
            extra += f"  [control_ret: {', '.join(sorted(fn.control_ret.values()))}]"
        controls = sum(1 for n in fn.node_def for i in n.input if i.startswith("^"))
        if controls:
            extra += f"  [{controls} control inputs]"
        lines.append(f"  {'  ' * depth}{name}: {ops}{extra}")
    return "\n".join(lines)


def require(condition, message):
    if not condition:
        raise SystemExit(f"export_graph_fixtures: {message}")


def check_structure(name, meta_graph):
    """Fails unless the saved graph holds the structure the fixture exists to test."""
    tree = serving_tree(meta_graph)
    fns = [fn for _, _, fn in tree]
    library = {f.signature.name for f in meta_graph.graph_def.library.function}
    all_ops = [n.op for fn in fns for n in fn.node_def]
    calls = ("PartitionedCall", "StatefulPartitionedCall")
    if name == "nested_calls":
        depth = {}
        for d, fname, fn in tree:
            base = fname.removeprefix("__inference_").rsplit("_", 1)[0]
            depth.setdefault(base, (d, fn))
        for level in ("serve", "block", "dense1"):
            require(level in depth, f"nested_calls: no FunctionDef for {level} reached from serving_default "
                                    f"(TensorFlow inlined it?); reached: {[f for _, f, _ in tree]}")
        serve_fn, block_fn, dense_fn = depth["serve"][1], depth["block"][1], depth["dense1"][1]
        serve_calls = [n for n in serve_fn.node_def if n.op in calls]
        block_calls = [n for n in block_fn.node_def if n.op in calls]
        direct = [n for n in block_fn.node_def if n.op in library]
        print(f"  check: serve ({serve_fn.signature.name}) calls "
              f"{[n.attr['f'].func.name for n in serve_calls]} via {sorted({n.op for n in serve_calls})}; "
              f"block ({block_fn.signature.name}) calls {[n.attr['f'].func.name for n in block_calls]} via "
              f"{sorted({n.op for n in block_calls})} and {[n.op for n in direct]} by op name; "
              f"dense1 ({dense_fn.signature.name}) reads {sum(n.op == 'ReadVariableOp' for n in dense_fn.node_def)} "
              f"variables")
        require(len(serve_calls) >= 2, "nested_calls: serve does not call block and dense1 through call ops")
        require(block_calls, "nested_calls: block does not call dense1 through a call op")
        require(direct, "nested_calls: block has no direct (op-name) function call")
        require(any(n.op == "ReadVariableOp" for n in dense_fn.node_def), "nested_calls: dense1 reads no variable")
    elif name == "list_outputs":
        splits = [n for fn in fns for n in fn.node_def if n.op == "Split"]
        unpacks = [n for fn in fns for n in fn.node_def if n.op == "Unpack"]
        require(splits and all(n.attr["num_split"].i == 3 for n in splits), "list_outputs: no Split with num_split=3")
        require(unpacks and all(n.attr["num"].i == 3 for n in unpacks), "list_outputs: no Unpack with num=3")
        require(any(op in calls for op in all_ops), "list_outputs: the nested function was inlined")
    elif name == "control_deps":
        require(any(i.startswith("^") for fn in fns for n in fn.node_def for i in n.input),
                "control_deps: no control inputs")
        require(any(fn.control_ret for fn in fns), "control_deps: no control outputs")
        require("Assert" in all_ops and "ReadVariableOp" in all_ops, "control_deps: no Assert or no variable read")
    elif name in ("custom_gradient", "straight_through"):
        require("IdentityN" in all_ops, "custom_gradient: no IdentityN")
    elif name == "cond":
        require("If" in all_ops and "StatelessIf" in all_ops, "cond: not both an If and a StatelessIf")
    elif name == "multi_output":
        sig = meta_graph.signature_def["serving_default"]
        require(len(sig.inputs) == 2 and len(sig.outputs) == 2, "multi_output: not two inputs and two outputs")


# ---------------------------------------------------------------- writing one fixture


def spec_json(s):
    return {"dtype": s.dtype.name, "shape": [-1 if d is None else int(d) for d in s.shape]}


def describe_signatures(loaded):
    out = {}
    for name, fn in sorted(loaded.signatures.items()):
        _, kwargs = fn.structured_input_signature
        outputs = fn.structured_outputs
        out[name] = {
            "inputs": {k: spec_json(v) for k, v in sorted(kwargs.items())},
            "outputs": {k: spec_json(tf.TensorSpec(v.shape, v.dtype)) for k, v in sorted(outputs.items())},
        }
    return out


def write_fixture(root, name):
    cls = FIXTURES[name]
    module = cls(np.random.default_rng(VARIABLE_SEED))
    concrete = module.serve.get_concrete_function()
    rng = np.random.default_rng(SEED)
    feeds = {k: rng.standard_normal(shape).astype(np.float32) for k, shape in cls.inputs.items()}
    if hasattr(cls, "check_sample"):
        cls.check_sample(feeds)
    # The oracle is the original Python function, not the SavedModel.
    outputs = {k: v.numpy() for k, v in module.serve(**{k: tf.constant(v) for k, v in feeds.items()}).items()}

    os.makedirs(root, exist_ok=True)
    target = os.path.join(root, name)
    tmp = tempfile.mkdtemp(prefix=".tmp-" + name + "-", dir=root)
    try:
        model_dir = os.path.join(tmp, "model")
        tf.saved_model.save(module, model_dir, signatures={"serving_default": concrete})

        loaded = tf.saved_model.load(model_dir)
        signatures = describe_signatures(loaded)
        sig = signatures["serving_default"]
        require(sorted(sig["inputs"]) == sorted(feeds), f"{name}: signature inputs {sorted(sig['inputs'])}")
        require(sorted(sig["outputs"]) == sorted(outputs), f"{name}: signature outputs {sorted(sig['outputs'])}")
        for io in ("inputs", "outputs"):
            for key, s in sig[io].items():
                require(-1 not in s["shape"], f"{name}: {io} {key} has an unknown dimension {s['shape']}")
        served = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in feeds.items()})
        diff = 0.0
        for k, expected in outputs.items():
            got = served[k].numpy()
            require(got.shape == expected.shape, f"{name}: output {k} has shape {got.shape}, expected {expected.shape}")
            diff = max(diff, float(np.max(np.abs(got.astype(np.float64) - expected.astype(np.float64)))))
        require(diff <= TOLERANCE, f"{name}: the reloaded serving_default differs from the Python function by {diff:.3g}")

        meta_graph = read_meta_graph(model_dir)
        print(f"{name}:", flush=True)
        check_structure(name, meta_graph)

        os.makedirs(os.path.join(tmp, "sample"))
        sample = {"signature": "serving_default", "seed": SEED, "inputs": {}, "outputs": {}}
        for kind, arrays in (("input", feeds), ("output", outputs)):
            for k in sorted(arrays):
                rel = f"sample/{kind}_{k}.npy"
                np.save(os.path.join(tmp, rel), np.ascontiguousarray(arrays[k]))
                sample[kind + "s"][k] = rel

        expected = {
            "format": 1,
            "model": name,
            "export_path": "tf_saved_model",
            "versions": {"tensorflow": tf.__version__},
            "description": cls.description,
            "signatures": signatures,
            "variables": [{"name": v.name.removesuffix(":0"), "shape": v.shape.as_list(), "trainable": v.trainable}
                          for v in module.variables],
            "variables_seed": VARIABLE_SEED,
            "sample": sample,
            "export_vs_python_max_abs_diff": diff,
        }
        with open(os.path.join(tmp, "expected.json"), "w") as f:
            json.dump(expected, f, indent=1)
            f.write("\n")
        if os.path.exists(target):
            shutil.rmtree(target)
        os.rename(tmp, target)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
    print(describe_structure(meta_graph))
    print(f"wrote {target} (reloaded vs Python: max abs diff {diff:.2e})", flush=True)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(REPO, "graphs"),
                        help="root folder for the fixtures (default: graphs/ at the top of the repository)")
    parser.add_argument("--fixtures", default="all",
                        help=f"comma-separated fixtures, or 'all' (default); choose from {list(FIXTURES)}")
    parser.add_argument("--force", action="store_true", help="rewrite fixtures that already exist")
    parser.add_argument("--list", action="store_true",
                        help="write nothing; print the op types the serving function of each existing fixture reaches")
    args = parser.parse_args(argv)

    names = list(FIXTURES) if args.fixtures == "all" else [n for n in args.fixtures.split(",") if n]
    unknown = [n for n in names if n not in FIXTURES]
    if unknown:
        parser.error(f"unknown fixture(s) {unknown}; choose from {list(FIXTURES)}")
    root = os.path.abspath(args.out)
    for name in names:
        target = os.path.join(root, name)
        if args.list:
            if os.path.isdir(target):
                print(f"{name}:\n{describe_structure(read_meta_graph(os.path.join(target, 'model')))}")
            else:
                print(f"{name}: not written")
            continue
        if os.path.isdir(target) and not args.force:
            print(f"kept {target} (exists; --force rewrites it)", flush=True)
            continue
        write_fixture(root, name)


if __name__ == "__main__":
    main(sys.argv[1:])
