#!/usr/bin/env python3
"""One training step in Python on a SavedModel that finetune exported, then a re-save: the middle
hop of the export round trip (Java -> Python -> Java -> Python).

Loads ``--model`` with ``tf.saved_model.load``, takes one SGD step (learning rate ``--lr``) on the
mean squared error between the signature's output and ``--target`` through the variables the
signature captures (or, with ``--through object``, the loaded object's ``trainable_variables``), writes the outputs after the step to ``--out/after.npy`` and saves the restored
object, trained, with ``tf.saved_model.save`` to ``--out/model``.

With ``--java-export DIR`` (the same model after finetune's step) it also writes, for comparing
variable by variable: ``--out/variables.json`` (each trained variable's name and shape, in the
signature's order) and ``--out/variables/<i>.npy`` (its value after TensorFlow's step),
``--out/before/<i>.npy`` (before it) and ``--out/java/<i>.npy`` (the Java export's variable of the
same name).

``--onednn on|off`` names TensorFlow's kernel library for the step (oneDNN or Eigen), whatever the
CPU's default: two runs that differ only in it measure how far the order of float sums alone moves
TensorFlow's own step (a floor for comparing another runtime's step with it).

Usage: scripts/python_step.py --model DIR --input NAME=FILE.npy [...] --target FILE.npy --out DIR [--lr 0.01]
       [--through signature|object] [--onednn on|off] [--java-export DIR]
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


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--input", action="append", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--signature", default="serving_default")
    parser.add_argument("--through", choices=["signature", "object"], default="signature",
                        help="train the variables the signature captures, or the loaded object's "
                             "trainable_variables as a Keras export lists them")
    parser.add_argument("--onednn", choices=["on", "off"], help="TensorFlow's kernel library (default: the CPU's)")
    parser.add_argument("--java-export", help="finetune's export after the same step, to compare variables with")
    args = parser.parse_args(argv)
    loaded = tf.saved_model.load(args.model)
    fn = loaded.signatures[args.signature]
    specs = fn.structured_input_signature[1]
    feeds = {}
    for item in args.input:
        name, path = item.split("=", 1)
        feeds[name] = tf.constant(np.load(path), dtype=specs[name].dtype)
    target = tf.constant(np.load(args.target))
    if args.through == "object":
        if not hasattr(loaded, "trainable_variables"):
            raise SystemExit(f"{args.model} lists no trainable_variables")
        variables = list(loaded.trainable_variables)
    else:
        variables = list(fn.trainable_variables)
    if not variables:
        raise SystemExit(f"{args.model} has no trainable variable ({args.through})")
    before = [v.numpy().copy() for v in variables]
    with tf.GradientTape() as tape:
        output = next(iter(fn(**feeds).values()))
        loss = tf.reduce_mean(tf.square(output - target))
    grads = tape.gradient(loss, variables)
    missing = [v.name for v, g in zip(variables, grads) if g is None]
    if missing:
        raise SystemExit(f"no gradient for {missing}")
    for v, g in zip(variables, grads):
        v.assign_sub(args.lr * tf.convert_to_tensor(g))
    after = next(iter(fn(**feeds).values()))
    os.makedirs(args.out, exist_ok=True)
    np.save(os.path.join(args.out, "after.npy"), after.numpy())
    if args.java_export:
        dump_variables(args, variables, before)
    tf.saved_model.save(loaded, os.path.join(args.out, "model"), signatures={args.signature: fn})
    print(f"python step on {args.model}: loss {float(loss):.6f}, {len(variables)} variables", flush=True)


def dump_variables(args, variables, before):
    exported = tf.saved_model.load(args.java_export)  # held: its variables live as long as it does
    theirs = list(exported.signatures[args.signature].trainable_variables)
    names = [v.name for v in variables]
    if len(set(names)) == len(names):
        java = {v.name: v for v in theirs}
        missing = [n for n in names if n not in java]
        if missing:
            raise SystemExit(f"{args.java_export} has no trainable variable named {missing[:5]}")
    elif len(theirs) == len(variables):  # names repeat: the same order, as the export keeps it
        java = dict(zip(range(len(theirs)), theirs))
        names = list(range(len(theirs)))
    else:
        raise SystemExit(f"{args.java_export} has {len(theirs)} trainable variables, the model {len(variables)}")
    described = []
    for kind in ("variables", "before", "java"):
        os.makedirs(os.path.join(args.out, kind), exist_ok=True)
    for i, v in enumerate(variables):
        np.save(os.path.join(args.out, "variables", f"{i}.npy"), v.numpy())
        np.save(os.path.join(args.out, "before", f"{i}.npy"), before[i])
        np.save(os.path.join(args.out, "java", f"{i}.npy"), java[names[i]].numpy())
        described.append({"name": v.name, "shape": list(v.shape)})
    with open(os.path.join(args.out, "variables.json"), "w") as f:
        json.dump(described, f, indent=0)


if __name__ == "__main__":
    main(sys.argv[1:])
