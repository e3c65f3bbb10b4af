#!/usr/bin/env python3
"""Keras applying given low-rank adapters, beside a merged export of the same: the oracle for
finetune's LoRA export.

Loads a keras-hub model (``.keras``), enables its backbone's adapters (``enable_lora(rank)``),
assigns the adapters' values from ``.npy`` files (named by variable path), and runs the model on
the inputs; then loads the export with ``tf.saved_model.load`` and runs its ``serving_default``
signature on the same inputs. Writes ``keras.npy`` and ``export.npy`` under ``--out``, and prints
the largest absolute difference between them.

Usage: scripts/lora_apply.py --keras model.keras --rank 4 --adapters adapters.json
           --inputs inputs.json --export DIR --out DIR
(``adapters.json``: {"<variable path>": "<file.npy>"}; ``inputs.json``: {"<input>": "<file.npy>"})
"""
import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
import keras_hub  # noqa: E402,F401  (registers the model's classes for loading)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag in ("--keras", "--adapters", "--inputs", "--export", "--out"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--rank", type=int, required=True)
    args = parser.parse_args(argv)
    with open(args.adapters) as f:
        adapters = json.load(f)
    with open(args.inputs) as f:
        inputs = {k: np.load(v) for k, v in json.load(f).items()}
    model = keras.saving.load_model(args.keras, compile=False)
    getattr(model, "backbone", model).enable_lora(args.rank)
    named = {v.path: v for v in model.weights}
    lora = sorted(n for n in named if "/lora_" in n)
    if sorted(adapters) != lora:
        raise SystemExit(f"the adapters given ({sorted(adapters)}) are not the model's ({lora})")
    for name, file in adapters.items():
        named[name].assign(np.load(file))
    x = inputs if len(inputs) > 1 else next(iter(inputs.values()))
    keras_out = np.asarray(model(x, training=False))
    loaded = tf.saved_model.load(args.export)
    outputs = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in inputs.items()})
    export_out = next(iter(outputs.values())).numpy()
    os.makedirs(args.out, exist_ok=True)
    np.save(os.path.join(args.out, "keras.npy"), keras_out)
    np.save(os.path.join(args.out, "export.npy"), export_out)
    print(f"keras with the adapters vs the merged export: max |difference| {np.max(np.abs(keras_out - export_out)):.3g}"
          f" (largest |output| {np.max(np.abs(keras_out)):.3g})", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
