#!/usr/bin/env python3
"""The numerical oracle for finetune's training: Keras trains a SavedModel the way Java should.

Reads a plan (JSON) and for each case calls the Keras model in inference mode
(``model(x, training=False)``) inside a ``tf.function`` under ``tf.GradientTape``, takes Keras's
loss and applies Keras's optimizer to the chosen variables, recording the loss of every step and
the variables after the requested steps. The model is the Keras model itself when the plan names
one (``keras_model``: a ``.keras`` file, or a tf_keras SavedModel directory with
``keras_flavor: tf_keras``); Keras then sees the Softmax and takes the loss from its logits, as
``model.fit`` does. Otherwise the SavedModel's serving signature stands in for the call.

Plan::

  {"model": "<SavedModel dir>", "signature": "serving_default", "output": "output_0",
   "keras_model": "<model.keras or tf_keras SavedModel dir>" (optional), "keras_flavor": "keras3" | "tf_keras",
   "inputs": {"<input>": "<file.npy>"}, "targets": "<file.npy>" | null,
   "loss": "sparse_categorical_crossentropy" | "categorical_crossentropy" | "binary_crossentropy"
           | "mean_squared_error" | "causal_lm",
   "cases": [{"name": "sgd_all", "steps": 5, "record": [1, 5],
              "optimizer": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9, "nesterov": false}
                         | {"name": "adam", "learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}
                         | {"name": "adamw", ..., "weight_decay": 0.004},
              "trainable": ["<variable name>", ...],
              "l2sp": 0.0}]}

A plan may enable low-rank adapters on a keras-hub model (``keras_model``), as its backbone's
``enable_lora(rank)`` does (attention query and value kernels; ``A`` He-uniform, ``B`` zero)::

  "lora": {"rank": 4}

The adapters' start is written beside each case's results (``lora_start`` in ``result.json``), so
that finetune can start from the same values; the case's ``trainable`` names them
(``.../lora_kernel_a``).

A plan may also put a new head on the model (what finetune's HeadSpec builds)::

  "head": {"at": "<layer>" | null, "hidden": 0, "classes": 3, "activation": "softmax",
           "mask_input": "padding_mask" | null, "initial": {"head_output/kernel": "<file.npy>", ...}}

The features are the named layer's output (the model cut there) or the model's output; 4-D
features are averaged over height and width (GlobalAveragePooling2D), 3-D ones over time
(weighted by the mask input when given); then Keras Dense layers ``head_hidden`` (ReLU) and
``head_output`` start from the given weights. Their variables are named ``head_*/kernel`` etc.

(``global_clipnorm`` may be given inside an optimizer; ``l2sp`` adds
``l2sp / 2 * sum ||w - w_start||^2`` over the trained variables, a new head's excepted, to the
loss, as finetune does.)

Writes, under ``--out``: ``<case>/result.json`` ({"losses": [...], "variables": {"<step>": {"<name>":
"<file>"}}}) and the ``.npy`` files it names. The causal-LM loss takes its targets from the
``token_ids`` input shifted by one, weighted by ``padding_mask``, averaged over unmasked positions,
exactly as finetune defines it.

Usage: scripts/reference_train.py --plan plan.json --out DIR [--onednn on|off] [--cases a,b]
"""
import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# --onednn on|off must take effect before TensorFlow is imported.
if "--onednn" in sys.argv[1:-1]:
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = {"on": "1", "off": "0"}.get(sys.argv[sys.argv.index("--onednn") + 1], "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402


def clean(name):
    return name[:-2] if name.endswith(":0") else name


def loss_fn(kind, targets, inputs):
    def compute(output):
        if kind == "sparse_categorical_crossentropy":
            return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(targets, output))
        if kind == "categorical_crossentropy":
            return tf.reduce_mean(keras.losses.categorical_crossentropy(targets, output))
        if kind == "binary_crossentropy":
            return tf.reduce_mean(keras.losses.binary_crossentropy(targets, output))
        if kind == "mean_squared_error":
            return tf.reduce_mean(keras.losses.mean_squared_error(targets, output))
        if kind == "causal_lm":
            ids = tf.cast(inputs["token_ids"], tf.int32)
            weights = tf.cast(inputs["padding_mask"][:, 1:], tf.float32)
            ce = keras.losses.sparse_categorical_crossentropy(ids[:, 1:], output[:, :-1, :], from_logits=True)
            return tf.reduce_sum(ce * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)
        raise SystemExit(f"unknown loss {kind}")
    return compute


def make_optimizer(spec, variables, k=keras):
    name = spec["name"]
    kw = dict(learning_rate=spec["learning_rate"])
    if spec.get("global_clipnorm"):
        kw["global_clipnorm"] = spec["global_clipnorm"]
    if name == "sgd":
        return k.optimizers.SGD(momentum=spec.get("momentum", 0.0), nesterov=spec.get("nesterov", False), **kw)
    if name == "adam":
        return k.optimizers.Adam(beta_1=spec.get("beta_1", 0.9), beta_2=spec.get("beta_2", 0.999),
                                     epsilon=spec.get("epsilon", 1e-7), **kw)
    if name == "adamw":
        opt = k.optimizers.AdamW(weight_decay=spec.get("weight_decay", 0.004), beta_1=spec.get("beta_1", 0.9),
                                     beta_2=spec.get("beta_2", 0.999), epsilon=spec.get("epsilon", 1e-7), **kw)
        if spec.get("exclude_biases_and_norms", True):
            opt.exclude_from_weight_decay(var_list=[v for v in variables if len(v.shape) <= 1])
        return opt
    raise SystemExit(f"unknown optimizer {name}")


def load_model(plan):
    """Returns (call(inputs) -> output tensor, {variable name: variable}, optimizer module)."""
    output_key = plan.get("output")
    if plan.get("keras_model"):
        if plan.get("keras_flavor") == "tf_keras":
            import tf_keras

            model = tf_keras.models.load_model(plan["keras_model"], compile=False)
            variables = {clean(v.name): v for v in model.weights}
            module = tf_keras
        else:
            import keras_hub  # noqa: F401  (registers GPT-2's classes for loading)

            model = keras.saving.load_model(plan["keras_model"], compile=False)
            variables = {v.path: v for v in model.weights}
            variables["__model__"] = model
            module = keras

        def call(inputs):
            x = inputs if len(inputs) > 1 else next(iter(inputs.values()))
            return model(x, training=False)

        return call, variables, module
    loaded = tf.saved_model.load(plan["model"])
    fn = loaded.signatures[plan.get("signature", "serving_default")]
    variables = {}
    for v in fn.variables:
        variables.setdefault(clean(v.name), v)

    def call(inputs):
        outputs = fn(**inputs)
        return outputs[output_key] if output_key else next(iter(outputs.values()))

    return call, variables, keras


def cut_model(model, layer_name):
    """A model from the inputs of the (possibly nested) functional model holding ``layer_name`` to its output."""
    candidates = [model] + [m for m in model._flatten_layers() if isinstance(m, keras.Model) and m is not model]
    for m in candidates:
        try:
            layer = m.get_layer(layer_name)
        except ValueError:
            continue
        return keras.Model(m.input, layer.output)
    raise SystemExit(f"no layer {layer_name} in the model")


def with_head(plan, call, by_name, module):
    """Puts the plan's head on the model: returns the new call and adds the head's variables to by_name."""
    spec = plan["head"]
    if spec.get("at"):
        if not plan.get("keras_model") or plan.get("keras_flavor") == "tf_keras":
            raise SystemExit("a head at a layer needs the Keras 3 model (keras_model)")
        import keras_hub  # noqa: F401

        base = keras.saving.load_model(plan["keras_model"], compile=False)
        features = cut_model(base, spec["at"])
        by_name = {v.path: v for v in base.weights}

        def call(inputs):
            x = inputs if len(inputs) > 1 else next(iter(inputs.values()))
            return features(x, training=False)

    dense = []
    if spec.get("hidden"):
        dense.append(module.layers.Dense(spec["hidden"], activation="relu", name="head_hidden"))
    dense.append(module.layers.Dense(spec["classes"], activation=spec.get("activation", "softmax"),
                                     name="head_output"))
    mask_input = spec.get("mask_input")

    def pooled(h, inputs):
        if len(h.shape) == 4:
            return tf.reduce_mean(h, axis=[1, 2])
        if len(h.shape) == 3:
            if mask_input:
                m = tf.cast(inputs[mask_input], tf.float32)
                total = tf.reduce_sum(h * tf.expand_dims(m, -1), axis=1)
                return total / tf.maximum(tf.reduce_sum(m, axis=1, keepdims=True), 1.0)
            return tf.reduce_mean(h, axis=1)
        return h

    def head_call(inputs):
        x = pooled(call(inputs), inputs)
        for layer in dense:
            x = layer(x)
        return x

    width = None
    for layer in dense:
        initial = {w: np.load(spec["initial"][f"{layer.name}/{w}"]) for w in ("kernel", "bias")}
        width = initial["kernel"].shape[0]
        layer.build((None, width))
        layer.kernel.assign(initial["kernel"])
        layer.bias.assign(initial["bias"])
        by_name[f"{layer.name}/kernel"] = layer.kernel
        by_name[f"{layer.name}/bias"] = layer.bias
    return head_call, by_name


def enable_lora(plan, case, by_name, out):
    """Enables keras-hub's adapters on the loaded model; writes their start; returns the new by_name."""
    model = by_name["__model__"]
    backbone = getattr(model, "backbone", model)
    backbone.enable_lora(plan["lora"]["rank"])
    start, files = os.path.join(out, case["name"], "lora_start"), {}
    os.makedirs(start, exist_ok=True)
    named = {v.path: v for v in model.weights}
    for name, v in named.items():
        if "/lora_" in name:
            rel = f"lora_start/{name.replace('/', '_')}.npy"
            np.save(os.path.join(out, case["name"], rel), v.numpy())
            files[name] = rel
    named["__model__"] = model
    return named, files


def run_case(plan, case, out):
    call, by_name, module = load_model(plan)
    lora_start = {}
    if plan.get("lora"):
        by_name, lora_start = enable_lora(plan, case, by_name, out)
    if plan.get("head"):
        call, by_name = with_head(plan, call, by_name, module)
    inputs = {k: tf.constant(np.load(v)) for k, v in plan["inputs"].items()}
    targets = tf.constant(np.load(plan["targets"])) if plan.get("targets") else None
    missing = [n for n in case["trainable"] if n not in by_name]
    if missing:
        raise SystemExit(f"variables not in the model: {missing}; it has {sorted(by_name)[:20]}...")
    variables = [by_name[n] for n in case["trainable"]]
    optimizer = make_optimizer(case["optimizer"], variables, module)
    compute = loss_fn(plan["loss"], targets, inputs)
    losses, recorded = [], {}
    os.makedirs(os.path.join(out, case["name"]), exist_ok=True)
    optimizer.build(variables)

    l2sp = case.get("l2sp", 0.0)
    # L2-SP pulls pretrained weights back to where they started; a new head has none to keep.
    anchored = [(v, tf.constant(v.numpy())) for n, v in zip(case["trainable"], variables)
                if not (plan.get("head") and n.split("/")[0] in ("head_hidden", "head_output"))]

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            loss = compute(call(inputs))
            if l2sp:
                penalty = tf.add_n([tf.reduce_sum(tf.square(v - w0)) for v, w0 in anchored])
                loss = loss + l2sp / 2 * penalty
        grads = tape.gradient(loss, variables)
        none = [n for n, g in zip(case["trainable"], grads) if g is None]
        if none:
            raise ValueError(f"no gradient for {none}")
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    for step in range(1, case["steps"] + 1):
        losses.append(float(train_step()))
        if step in case.get("record", [case["steps"]]):
            files = {}
            for i, (n, v) in enumerate(zip(case["trainable"], variables)):
                rel = f"step_{step}/{i}.npy"
                os.makedirs(os.path.join(out, case["name"], f"step_{step}"), exist_ok=True)
                np.save(os.path.join(out, case["name"], rel), v.numpy())
                files[n] = rel
            recorded[str(step)] = files
    with open(os.path.join(out, case["name"], "result.json"), "w") as f:
        json.dump({"losses": losses, "variables": recorded, "lora_start": lora_start}, f, indent=1)
    print(f"{case['name']}: losses {['%.6f' % x for x in losses]}", flush=True)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plan", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--onednn", choices=["on", "off"],
                        help="TensorFlow's oneDNN CPU kernels (default: TensorFlow's default, which depends on the CPU);"
                             " running both measures how far Keras's results move with the kernel library alone")
    parser.add_argument("--cases", help="comma-separated case names to run (default: all)")
    args = parser.parse_args(argv)
    with open(args.plan) as f:
        plan = json.load(f)
    keras.utils.set_random_seed(1234)
    wanted = set(args.cases.split(",")) if args.cases else None
    for case in plan["cases"]:
        if wanted is None or case["name"] in wanted:
            run_case(plan, case, args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
