#!/usr/bin/env python3
"""Loads a SavedModel the way Python teams do and writes what it computes, for finetune's export tests.

Reads a spec (JSON)::

  {"export": "<SavedModel dir>", "signature": "serving_default",
   "inputs": {"<input>": "<file.npy>"}, "out": "<dir>",
   "tfsm": true, "tf_keras": false, "fingerprint": false}

and writes under ``out``:

- ``loaded/<output>.npy``: ``tf.saved_model.load(export).signatures[signature](**inputs)``;
- ``variables.json`` with ``variables/<i>.npy``: every variable the loaded object holds (its
  ``variables``, ``_all_variables`` and the signature's captured variables), as ``[name, file]``
  pairs, names without ``:0``; the same name may appear more than once (aliases);
- ``checkpoint.json`` with ``checkpoint/<i>.npy``: every tensor of ``variables/``, by key;
- ``tfsm/<output>.npy`` (``tfsm``): ``keras.layers.TFSMLayer`` inside a new ``keras.Model``,
  through ``predict``, on the ``serve`` endpoint of a Keras 3 export, else on the signature when
  it has one input; for a multi-input signature-only model ``tfsm/UNSUPPORTED`` says why not;
- ``fingerprint.pb`` (``fingerprint``): the fingerprint TensorFlow computes for the export;
- ``tf_keras.json`` with ``tf_keras/<i>.npy`` (``tf_keras``): ``tf_keras.models.load_model(export)``
  and its weights.

Usage: scripts/check_export.py SPEC.json
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def clean(name):
    return name[:-2] if name.endswith(":0") else name


def save_arrays(out, sub, pairs):
    os.makedirs(os.path.join(out, sub), exist_ok=True)
    index = []
    for i, (name, value) in enumerate(pairs):
        rel = f"{sub}/{i}.npy"
        np.save(os.path.join(out, rel), np.asarray(value))
        index.append([name, rel])
    return index


def main(spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    out = spec["out"]
    os.makedirs(out, exist_ok=True)
    signature = spec.get("signature", "serving_default")
    inputs = {k: np.load(v) for k, v in spec["inputs"].items()}

    loaded = tf.saved_model.load(spec["export"])
    fn = loaded.signatures[signature]
    specs = fn.structured_input_signature[1]
    feeds = {k: tf.constant(v, dtype=specs[k].dtype) for k, v in inputs.items()}
    result = fn(**feeds)
    os.makedirs(os.path.join(out, "loaded"), exist_ok=True)
    for key, value in result.items():
        np.save(os.path.join(out, "loaded", f"{key}.npy"), value.numpy())

    seen = []
    for group in (getattr(loaded, "variables", None), getattr(loaded, "_all_variables", None), fn.variables):
        for v in list(group or []):
            if not any(v is s for s in seen):
                seen.append(v)
    index = save_arrays(out, "variables", [(clean(v.name), v.numpy()) for v in seen])
    with open(os.path.join(out, "variables.json"), "w") as f:
        json.dump(index, f)

    reader = tf.train.load_checkpoint(os.path.join(spec["export"], "variables", "variables"))
    keys = sorted(k for k in reader.get_variable_to_shape_map() if k != "_CHECKPOINTABLE_OBJECT_GRAPH")
    index = save_arrays(out, "checkpoint", [(k, reader.get_tensor(k)) for k in keys])
    with open(os.path.join(out, "checkpoint.json"), "w") as f:
        json.dump(index, f)

    if spec.get("tfsm"):
        import keras

        os.makedirs(os.path.join(out, "tfsm"), exist_ok=True)
        if hasattr(loaded, "serve"):
            # A Keras 3 export's own endpoint takes the model's input structure.
            layer = keras.layers.TFSMLayer(spec["export"], call_endpoint="serve")
            keras_inputs = {k: keras.Input(shape=s.shape[1:], dtype=s.dtype.name, name=k) for k, s in specs.items()}
            x = keras_inputs if len(specs) > 1 else next(iter(keras_inputs.values()))
            model = keras.Model(keras_inputs, layer(x))
            predicted = model.predict({k: feeds[k].numpy() for k in keras_inputs}, verbose=0)
        elif len(specs) == 1:
            # A signature takes keyword arguments; a layer passes its one input positionally.
            layer = keras.layers.TFSMLayer(spec["export"], call_endpoint=signature)
            (key, s), = specs.items()
            keras_input = keras.Input(shape=s.shape[1:], dtype=s.dtype.name, name=key)
            model = keras.Model(keras_input, layer(keras_input))
            predicted = model.predict(feeds[key].numpy(), verbose=0)
        else:
            predicted = None
            with open(os.path.join(out, "tfsm", "UNSUPPORTED"), "w") as f:
                f.write("TFSMLayer calls an endpoint with one positional argument; signature "
                        f"{signature} takes {len(specs)} keyword arguments ({sorted(specs)}) and the "
                        "SavedModel has no 'serve' endpoint\n")
        if predicted is not None:
            items = predicted.items() if isinstance(predicted, dict) else [(next(iter(result)), predicted)]
            for key, value in items:
                np.save(os.path.join(out, "tfsm", f"{key}.npy"), np.asarray(value))

    if spec.get("tf_keras"):
        import tf_keras

        model = tf_keras.models.load_model(spec["export"], compile=False)
        index = save_arrays(out, "tf_keras", [(clean(w.name), w.numpy()) for w in model.weights])
        with open(os.path.join(out, "tf_keras.json"), "w") as f:
            json.dump(index, f)
    if spec.get("fingerprint"):
        from tensorflow.python.saved_model.pywrap_saved_model import fingerprinting as fingerprinting_pywrap

        with open(os.path.join(out, "fingerprint.pb"), "wb") as f:
            f.write(fingerprinting_pywrap.CreateFingerprintDef(spec["export"]))
    print(f"checked {spec['export']}: outputs {sorted(result)}, {len(seen)} variables", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
