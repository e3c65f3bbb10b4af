#!/usr/bin/env python3
"""Writes the Keras SavedModel fixtures that finetune is built and tested against.

Every fixture is a real Keras model exported by real Keras, with fixed seeds:

  <root>/<model>/<export path>/model/          the SavedModel
  <root>/<model>/<export path>/expected.json   what Keras says about it
  <root>/<model>/<export path>/sample/*.npy    a seeded input and Keras's output for it
  <root>/<model>/keras/model.keras             the Keras 3 model itself (native format), so that
                                              the training oracle can call it as Keras does

<root> is savedmodels/ for the small image models, which are committed (a Keras 3 export
stores every variable twice, so even the small GPT-2 is too large to commit), and
savedmodels/generated/ (git-ignored) for the rest, which the test command generates
once and reuses.

Models (``--models``; default: all of them, skipping those already written):
  vgg16_small         keras.applications.VGG16 topology and layer names, widths / 8,
                      32x32 input, include_top with fc1/fc2 narrowed, 10 classes
  inception_v3_small  keras.applications.InceptionV3 topology and layer names, widths / 8,
                      75x75 input (the smallest legal one), include_top=False
  gpt2_small          keras-hub GPT2CausalLM, GPT-2 vocabulary (50257), 2 layers, hidden 64
  vgg16               full-size VGG16, include_top=False, 64x64 input
  inception_v3        full-size InceptionV3, include_top=False, 75x75 input
  gpt2_base           keras-hub GPT2CausalLM with the gpt2-base configuration (124M params)
  text_embedding      a tiny tf_keras text classifier (Embedding, pooling, Dense): its Embedding
                      reads through ResourceGather, an op with no C++ gradient (tf_keras only)
  recurrent           a tiny tf_keras sequence regressor: LSTM (8, return_sequences) -> GRU (6) ->
                      Dense (1) over 10 steps of 4 features; tf_keras saves each recurrent layer
                      as a call (with its cuDNN twin beside it) into a While loop over TensorLists;
                      compiled (Adam, MSE, MAE metric) and fit one step before it is saved
  qat                 quantization-aware training as tfmot builds it (tf_keras): a small CNN
                      (Conv2D conv -> Flatten -> Dense hidden -> Dense classes) through
                      ``tfmot.quantization.keras.quantize_model``: fake quantization of inputs,
                      kernels and activations (FakeQuantWithMinMaxVars, per channel for the
                      convolution's kernel) in ranges that Keras's fit calibrates (compiled, 2
                      epochs of 64 images); saved with ``model.save(path, save_format="tf")``
  tf1_linear          a TF1-style SavedModel (SavedModelBuilder): no object graph, no functions
                      (export path ``tf1`` only)

Export paths: ``keras3_export`` (Keras 3 ``model.export()``) for every model; for
vgg16_small also ``tf_saved_model`` (``tf.saved_model.save(model)``) and ``tf_keras``
(tf_keras ``model.save(path, save_format="tf")`` of the same architecture and weights).

Weights are random (seeded): nothing can be downloaded on our machines. On a machine
that can download, ``--weights pretrained`` loads ImageNet weights for the full-size
VGG16 and InceptionV3 and the ``gpt2_base_en`` preset for gpt2_base (``--weights imagenet``
is the same switch under the name Keras uses).

Usage:
  scripts/export_keras_models.py [--out savedmodels] [--models a,b,...] [--weights random|imagenet|pretrained] [--force]
"""
import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

SEED = 1234
SMALL = ["vgg16_small", "inception_v3_small", "gpt2_small", "text_embedding", "recurrent", "qat", "tf1_linear"]
FULL = ["vgg16", "inception_v3", "gpt2_base"]
COMMITTED = ["vgg16_small", "inception_v3_small", "text_embedding", "recurrent", "qat", "tf1_linear"]


# ---------------------------------------------------------------- width-reduced replicas


@contextlib.contextmanager
def narrowed(layers_module, divisor, dense_names=()):
    """Builds keras.applications topologies with every Conv2D's filters divided by
    ``divisor`` (and the units of the named Dense layers), so that layer names, blocks
    and connectivity stay those of the real architecture while the weights get small."""
    conv = layers_module.Conv2D
    dense = layers_module.Dense
    conv_init, dense_init = conv.__init__, dense.__init__

    def conv_patched(self, *args, **kwargs):
        if args:
            args = (max(1, args[0] // divisor),) + tuple(args[1:])
        else:
            kwargs["filters"] = max(1, kwargs["filters"] // divisor)
        conv_init(self, *args, **kwargs)

    def dense_patched(self, *args, **kwargs):
        if kwargs.get("name") in dense_names:
            if args:
                args = (max(1, args[0] // divisor),) + tuple(args[1:])
            else:
                kwargs["units"] = max(1, kwargs["units"] // divisor)
        dense_init(self, *args, **kwargs)

    conv.__init__, dense.__init__ = conv_patched, dense_patched
    try:
        yield
    finally:
        conv.__init__, dense.__init__ = conv_init, dense_init


def build_vgg16_small(k=keras):
    with narrowed(k.layers, 8, dense_names=("fc1", "fc2")):
        return k.applications.VGG16(weights=None, include_top=True, input_shape=(32, 32, 3), classes=10)


def build_inception_v3_small():
    with narrowed(keras.layers, 8):
        return keras.applications.InceptionV3(weights=None, include_top=False, input_shape=(75, 75, 3))


def build_vgg16(weights):
    return keras.applications.VGG16(
        weights="imagenet" if weights == "pretrained" else None, include_top=False, input_shape=(64, 64, 3))


def build_inception_v3(weights):
    return keras.applications.InceptionV3(
        weights="imagenet" if weights == "pretrained" else None, include_top=False, input_shape=(75, 75, 3))


def build_gpt2(config, weights):
    import keras_hub

    if weights == "pretrained" and config == "base":
        return keras_hub.models.GPT2CausalLM.from_preset("gpt2_base_en", preprocessor=None)
    if config == "base":
        dims = dict(num_layers=12, num_heads=12, hidden_dim=768, intermediate_dim=3072, max_sequence_length=1024)
    else:
        dims = dict(num_layers=2, num_heads=2, hidden_dim=64, intermediate_dim=256, max_sequence_length=128)
    backbone = keras_hub.models.GPT2Backbone(vocabulary_size=50257, **dims)
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)


# ---------------------------------------------------------------- what Keras says


def keras_layers_in_forward_order(model):
    """The model's layers in forward order; nested models (GPT-2's backbone) are expanded
    into their layers, and a layer reached twice (GPT-2's tied token embedding) is listed once."""
    out, seen = [], set()

    def visit(layer):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        if isinstance(layer, keras.Model) and layer is not model:
            for inner in layer.layers:
                visit(inner)
            return
        out.append(layer)

    for layer in model.layers:
        visit(layer)
    return out


def param_count(weights):
    return int(sum(int(np.prod(w.shape)) for w in weights))


def describe_layers(model):
    rows = []
    for layer in keras_layers_in_forward_order(model):
        rows.append({
            "name": layer.name,
            "class": type(layer).__name__,
            "trainable_params": param_count(layer.trainable_weights),
            "non_trainable_params": param_count(layer.non_trainable_weights),
        })
    return rows


def describe_totals(model):
    trainable = param_count(model.trainable_weights)
    non_trainable = param_count(model.non_trainable_weights)
    return {"total_params": trainable + non_trainable, "trainable_params": trainable,
            "non_trainable_params": non_trainable}


def spec_json(spec):
    return {"dtype": spec.dtype.name, "shape": [-1 if d is None else int(d) for d in spec.shape]}


def describe_signatures(export_dir):
    loaded = tf.saved_model.load(export_dir)
    out = {}
    for name, fn in sorted(loaded.signatures.items()):
        _, kwargs = fn.structured_input_signature
        outputs = fn.structured_outputs
        out[name] = {
            "inputs": {k: spec_json(v) for k, v in sorted(kwargs.items())},
            "outputs": {k: spec_json(tf.TensorSpec(v.shape, v.dtype)) for k, v in sorted(outputs.items())},
        }
    return loaded, out


# ---------------------------------------------------------------- samples


def image_sample(model, batch=2):
    rng = np.random.default_rng(SEED)
    shape = (batch,) + tuple(int(d) for d in model.input_shape[1:])
    # Values in the range preprocess_input produces for VGG ("caffe") and Inception ("tf").
    return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)


def token_sample(vocab=50257, batch=2, length=8):
    rng = np.random.default_rng(SEED)
    ids = rng.integers(0, vocab, size=(batch, length), dtype=np.int64).astype(np.int32)
    mask = np.ones((batch, length), dtype=np.int32)
    mask[1, -2:] = 0
    ids[1, -2:] = 0
    return {"token_ids": ids, "padding_mask": mask}


def relative_diff(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = max(float(np.max(np.abs(a))), 1e-30)
    return float(np.max(np.abs(a - b))) / scale


# ---------------------------------------------------------------- writing one fixture


def write_fixture(target, export_path, save, keras_model, keras_out, sample_inputs, model_name, extra=None):
    """Writes model/, sample/ and expected.json for one export into ``target`` (atomically:
    a temporary sibling, then a rename)."""
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-" + os.path.basename(target) + "-", dir=parent)
    try:
        model_dir = os.path.join(tmp, "model")
        save(model_dir)
        loaded, signatures = describe_signatures(model_dir)
        sig = signatures["serving_default"]
        input_names = list(sig["inputs"].keys())
        if isinstance(sample_inputs, dict):
            feeds = {k: sample_inputs[k] for k in input_names}
        else:
            if len(input_names) != 1:
                raise SystemExit(f"{model_name}/{export_path}: expected one input, signature has {input_names}")
            feeds = {input_names[0]: sample_inputs}
        output_names = list(sig["outputs"].keys())
        if len(output_names) != 1:
            raise SystemExit(f"{model_name}/{export_path}: expected one output, signature has {output_names}")
        outputs = {output_names[0]: np.asarray(keras_out)}

        # The export must compute what Keras computes, or the fixture is useless as an oracle.
        served = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in feeds.items()})
        diff = relative_diff(outputs[output_names[0]], served[output_names[0]].numpy())
        if diff > 1e-5:
            raise SystemExit(f"{model_name}/{export_path}: serving_default differs from Keras by {diff:.3g}")

        os.makedirs(os.path.join(tmp, "sample"))
        sample = {"signature": "serving_default", "seed": SEED, "inputs": {}, "outputs": {}}
        for kind, arrays in (("input", feeds), ("output", outputs)):
            for k, v in arrays.items():
                rel = f"sample/{kind}_{k}.npy"
                np.save(os.path.join(tmp, rel), np.ascontiguousarray(v))
                sample[kind + "s"][k] = rel

        expected = {
            "format": 1,
            "model": model_name,
            "export_path": export_path,
            "versions": versions(),
            "signatures": signatures,
            "layers": describe_layers(keras_model),
            "totals": describe_totals(keras_model),
            "sample": sample,
            "export_vs_keras_relative_diff": diff,
        }
        if extra:
            expected.update(extra)
        with open(os.path.join(tmp, "expected.json"), "w") as f:
            json.dump(expected, f, indent=1)
            f.write("\n")
        if os.path.exists(target):
            shutil.rmtree(target)
        os.rename(tmp, target)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
    print(f"wrote {target} (export vs Keras: {diff:.2e})", flush=True)


def versions():
    out = {"tensorflow": tf.__version__, "keras": keras.__version__}
    for mod in ("keras_hub", "tf_keras"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return out


def keras3_export(model, input_signature=None):
    def save(path):
        model.export(path, format="tf_saved_model", verbose=False, input_signature=input_signature)
    return save


# ---------------------------------------------------------------- the models


def save_keras(model, out, name):
    """The Keras model in Keras's own format, beside its exports (atomically)."""
    target = os.path.join(out, name, "keras", "model.keras")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = target + ".tmp.keras"
    model.save(tmp)
    os.replace(tmp, target)


def export_vgg16_small(out):
    keras.utils.set_random_seed(SEED)
    model = build_vgg16_small()
    save_keras(model, out, "vgg16_small")
    x = image_sample(model)
    y = model(x, training=False).numpy()
    base = os.path.join(out, "vgg16_small")
    write_fixture(os.path.join(base, "keras3_export"), "keras3_export", keras3_export(model), model, y, x,
                  "vgg16_small")
    write_fixture(os.path.join(base, "tf_saved_model"), "tf_saved_model",
                  lambda p: tf.saved_model.save(model, p), model, y, x, "vgg16_small")

    import tf_keras

    legacy = build_vgg16_small(tf_keras)
    legacy.set_weights(model.get_weights())
    y_legacy = legacy(x, training=False).numpy()
    write_fixture(os.path.join(base, "tf_keras"), "tf_keras",
                  lambda p: legacy.save(p, save_format="tf"), legacy, y_legacy, x, "vgg16_small")


def export_image_model(out, name, build):
    keras.utils.set_random_seed(SEED)
    model = build()
    save_keras(model, out, name)
    x = image_sample(model)
    y = model(x, training=False).numpy()
    write_fixture(os.path.join(out, name, "keras3_export"), "keras3_export", keras3_export(model), model, y, x, name)


def export_gpt2(out, name, config, weights):
    keras.utils.set_random_seed(SEED)
    model = build_gpt2(config, weights)
    save_keras(model, out, name)
    feeds = token_sample(length=8)
    y = model(feeds, training=False)
    y = np.asarray(keras.ops.convert_to_numpy(y))
    # Keras 3.8's export cannot infer a signature for dict inputs: give it one.
    signature = [{
        "token_ids": tf.TensorSpec([None, None], tf.int32, name="token_ids"),
        "padding_mask": tf.TensorSpec([None, None], tf.int32, name="padding_mask"),
    }]
    write_fixture(os.path.join(out, name, "keras3_export"), "keras3_export", keras3_export(model, signature),
                  model, y, feeds, name, extra={"gpt2": {"config": config}})


def export_text_embedding(out):
    import tf_keras

    tf_keras.utils.set_random_seed(SEED)
    model = tf_keras.Sequential([
        tf_keras.Input((6,), dtype="int32", name="tokens"),
        tf_keras.layers.Embedding(100, 8, name="embedding"),
        tf_keras.layers.GlobalAveragePooling1D(name="pool"),
        tf_keras.layers.Dense(3, activation="softmax", name="classifier"),
    ], name="text_embedding")
    x = np.random.default_rng(SEED).integers(0, 100, size=(2, 6)).astype(np.int32)
    y = model(x, training=False).numpy()
    write_fixture(os.path.join(out, "text_embedding", "tf_keras"), "tf_keras",
                  lambda p: model.save(p, save_format="tf"), model, y, x, "text_embedding")


def export_recurrent(out):
    import tf_keras

    tf_keras.utils.set_random_seed(SEED)
    model = tf_keras.Sequential([
        tf_keras.Input((10, 4), name="series"),
        tf_keras.layers.LSTM(8, return_sequences=True, name="lstm"),
        tf_keras.layers.GRU(6, name="gru"),
        tf_keras.layers.Dense(1, name="value"),
    ], name="recurrent")
    x = np.cumsum(0.3 * np.random.default_rng(SEED).standard_normal((4, 10, 4)), axis=1).astype(np.float32)
    # Compiled and fit once, as a user's model comes: the SavedModel then also holds the optimizer's
    # iteration, learning rate and slots and the metrics' totals, which are no parameters.
    model.compile(optimizer=tf_keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    model.fit(x, np.linspace(-1, 1, 4).astype(np.float32), epochs=1, batch_size=4, verbose=0)
    y = model(x, training=False).numpy()
    write_fixture(os.path.join(out, "recurrent", "tf_keras"), "tf_keras",
                  lambda p: model.save(p, save_format="tf"), model, y, x, "recurrent")


def export_qat(out):
    # tfmot wraps tf_keras layers; it is installed without its dependencies (see scripts/python-env).
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tf_keras
    import tensorflow_model_optimization as tfmot

    tf_keras.utils.set_random_seed(SEED)
    base = tf_keras.Sequential([
        tf_keras.Input((8, 8, 1), name="image"),
        tf_keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
        tf_keras.layers.Flatten(name="flatten"),
        tf_keras.layers.Dense(8, activation="relu", name="hidden"),
        tf_keras.layers.Dense(3, activation="softmax", name="classes"),
    ], name="qat")
    model = tfmot.quantization.keras.quantize_model(base)
    rng = np.random.default_rng(SEED)
    labels = rng.integers(0, 3, size=64)
    images = 0.3 * rng.random((64, 8, 8, 1))
    for i, label in enumerate(labels):
        images[i, :, 2 * label:2 * label + 3, 0] += 0.7  # the class is where a bright band is
    images = images.astype(np.float32)
    # Quantization ranges start empty; fit calibrates them (and trains), as a QAT model comes.
    model.compile(optimizer=tf_keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(images, labels, epochs=2, batch_size=16, verbose=0)
    x = images[:4]
    y = model(x, training=False).numpy()
    if float(np.std(y)) < 1e-3:
        raise SystemExit(f"qat: outputs do not depend on the input (std {np.std(y):.2g}); ranges not calibrated")
    with tfmot.quantization.keras.quantize_scope():
        write_fixture(os.path.join(out, "qat", "tf_keras"), "tf_keras",
                      lambda p: model.save(p, save_format="tf"), model, y, x, "qat")


class Tf1Variable:
    def __init__(self, variable):
        self.shape = variable.shape.as_list()
        self.trainable = variable.trainable


class VariableScope:
    """A TF1 graph's top-level variable scope, described the way the Keras helpers describe a layer."""

    def __init__(self, name, variables):
        self.name = name
        self.trainable_weights = [v for v in variables if v.trainable]
        self.non_trainable_weights = [v for v in variables if not v.trainable]


class Tf1Model:
    """Describes a TF1 graph the way the Keras helpers describe a model, for expected.json: its
    "layers" are the top-level variable scopes, in the order their variables were created."""

    def __init__(self, variables):
        scopes = {}
        for v in variables:
            scopes.setdefault(v.op.name.split("/")[0], []).append(Tf1Variable(v))
        self.layers = [VariableScope(name, vs) for name, vs in scopes.items()]
        self.trainable_weights = [v for vs in scopes.values() for v in vs if v.trainable]
        self.non_trainable_weights = [v for vs in scopes.values() for v in vs if not v.trainable]


def export_tf1_linear(out):
    x = np.random.default_rng(SEED).normal(size=(2, 4)).astype(np.float32)
    graph = tf.Graph()
    sess = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        tf.compat.v1.set_random_seed(SEED)
        inputs = tf.compat.v1.placeholder(tf.float32, [None, 4], name="features")
        with tf.compat.v1.variable_scope("dense"):
            w = tf.compat.v1.get_variable("kernel", [4, 3], use_resource=False)
            b = tf.compat.v1.get_variable("bias", [3], initializer=tf.compat.v1.zeros_initializer(), use_resource=False)
        tf.compat.v1.get_variable("global_step", [], dtype=tf.int64, trainable=False, use_resource=False,
                                  initializer=tf.compat.v1.zeros_initializer())
        probs = tf.nn.softmax(tf.matmul(inputs, w) + b, name="probabilities")
        sess.run(tf.compat.v1.global_variables_initializer())
        # The TF1 graph is its own oracle: its session's output is the expected output.
        y = sess.run(probs, {inputs: x})
        model = Tf1Model(tf.compat.v1.global_variables())

    def save(path):
        with graph.as_default():
            builder = tf.compat.v1.saved_model.Builder(path)
            signature = tf.compat.v1.saved_model.predict_signature_def({"features": inputs}, {"probabilities": probs})
            builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={"serving_default": signature})
            builder.save()

    try:
        write_fixture(os.path.join(out, "tf1_linear", "tf1"), "tf1", save, model, y, x, "tf1_linear")
    finally:
        sess.close()


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "savedmodels"),
                        help="root folder for the fixtures (default: savedmodels/)")
    parser.add_argument("--models", default="all",
                        help="comma-separated models, or 'small', 'full', 'all' (default: all)")
    parser.add_argument("--weights", choices=["random", "imagenet", "pretrained"], default="random",
                        help="random (seeded; the default, no download) or imagenet/pretrained: ImageNet weights"
                             " for the full-size image models, the gpt2_base_en preset for gpt2_base (downloads)")
    parser.add_argument("--force", action="store_true", help="rewrite fixtures that already exist")
    args = parser.parse_args(argv)
    if args.weights == "imagenet":
        args.weights = "pretrained"

    groups = {"small": SMALL, "full": FULL, "all": SMALL + FULL}
    names = [n for item in args.models.split(",") if item for n in groups.get(item, [item])]
    unknown = [n for n in names if n not in SMALL + FULL]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {SMALL + FULL}")
    root = os.path.abspath(args.out)
    tasks = {
        "vgg16_small": lambda out: export_vgg16_small(out),
        "inception_v3_small": lambda out: export_image_model(out, "inception_v3_small", build_inception_v3_small),
        "gpt2_small": lambda out: export_gpt2(out, "gpt2_small", "small", "random"),
        "vgg16": lambda out: export_image_model(out, "vgg16", lambda: build_vgg16(args.weights)),
        "inception_v3": lambda out: export_image_model(out, "inception_v3", lambda: build_inception_v3(args.weights)),
        "gpt2_base": lambda out: export_gpt2(out, "gpt2_base", "base", args.weights),
        "text_embedding": lambda out: export_text_embedding(out),
        "recurrent": lambda out: export_recurrent(out),
        "qat": lambda out: export_qat(out),
        "tf1_linear": lambda out: export_tf1_linear(out),
    }
    for name in names:
        out = root if name in COMMITTED else os.path.join(root, "generated")
        markers = [os.path.join(out, name, "keras", "model.keras"), os.path.join(out, name, "keras3_export", "expected.json")]
        if name in ("text_embedding", "recurrent", "qat", "tf1_linear"):
            markers = [os.path.join(out, name)]
        if all(os.path.exists(m) for m in markers) and not args.force:
            print(f"kept {os.path.join(out, name)} (complete; --force rewrites it)", flush=True)
            continue
        tasks[name](out)


if __name__ == "__main__":
    main(sys.argv[1:])
