#!/usr/bin/env python3
"""Loads a SavedModel the way Python teams do and writes what it computes, for finetune's export tests.

Reads a spec (JSON)::

  {"export": "<SavedModel dir>", "signature": "serving_default",
   "inputs": {"<input>": "<file.npy>"}, "out": "<dir>",
   "tfsm": true, "base": "<SavedModel dir>", "tf_keras": false, "fingerprint": false}

and writes under ``out``:

- ``loaded/<output>.npy``: ``tf.saved_model.load(export).signatures[signature](**inputs)``;
- ``variables.json`` with ``variables/<i>.npy``: every variable the loaded object holds (its
  ``variables``, ``_all_variables`` and the signature's captured variables), as ``[name, file]``
  pairs, names without ``:0``; the same name may appear more than once (aliases);
- ``checkpoint.json`` with ``checkpoint/<i>.npy``: every tensor of ``variables/``, by key;
- ``tfsm/<endpoint>/<output>.npy`` (``tfsm``): ``keras.layers.TFSMLayer(export,
  call_endpoint=endpoint)`` inside a new ``keras.Model``, through ``predict``, for the endpoints
  ``serving_default`` and ``serve``; where one fails, ``tfsm/<endpoint>/UNSUPPORTED`` says why.
  With ``"base": "<SavedModel dir>"`` the same for the base model under ``base_tfsm/<endpoint>/``;
- ``object.json``: how many ``variables``, ``trainable_variables`` and ``non_trainable_variables``
  the loaded object lists (null where it has no such attribute);
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


ENDPOINTS = ("serving_default", "serve")


def tfsm(export, loaded, endpoint, specs, feeds, result, out):
    """``keras.layers.TFSMLayer(export, call_endpoint=endpoint)`` inside a new ``keras.Model``, called
    through ``predict`` with the model's input structure (one tensor, or a dict of them), as Keras's
    docs show it; its outputs under ``out``, or ``out/UNSUPPORTED`` saying why it failed."""
    import keras

    os.makedirs(out, exist_ok=True)
    try:
        if not hasattr(loaded, endpoint) and endpoint not in loaded.signatures:
            raise ValueError(f"the SavedModel has no endpoint '{endpoint}'")
        layer = keras.layers.TFSMLayer(export, call_endpoint=endpoint)
        keras_inputs = {k: keras.Input(shape=s.shape[1:], dtype=s.dtype.name, name=k) for k, s in specs.items()}
        x = keras_inputs if len(specs) > 1 else next(iter(keras_inputs.values()))
        model = keras.Model(keras_inputs, layer(x))
        predicted = model.predict({k: feeds[k].numpy() for k in keras_inputs}, verbose=0)
    except Exception as e:  # noqa: BLE001 - the reason is the finding
        with open(os.path.join(out, "UNSUPPORTED"), "w") as f:
            f.write(" ".join(str(e).split())[:2000] + "\n")
        return
    if result is not None:
        items = predicted.items() if isinstance(predicted, dict) else [(next(iter(result)), predicted)]
        for key, value in items:
            np.save(os.path.join(out, f"{key}.npy"), np.asarray(value))


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
        for endpoint in ENDPOINTS:
            tfsm(spec["export"], loaded, endpoint, specs, feeds, result, os.path.join(out, "tfsm", endpoint))
        if spec.get("base"):
            base = tf.saved_model.load(spec["base"])
            base_specs = base.signatures[signature].structured_input_signature[1]
            base_feeds = {k: tf.constant(v, dtype=base_specs[k].dtype) for k, v in inputs.items()}
            for endpoint in ENDPOINTS:
                tfsm(spec["base"], base, endpoint, base_specs, base_feeds, None,
                     os.path.join(out, "base_tfsm", endpoint))

    lists = {}
    for name in ("variables", "trainable_variables", "non_trainable_variables"):
        value = getattr(loaded, name, None)
        lists[name] = None if value is None else len(list(value))
    with open(os.path.join(out, "object.json"), "w") as f:
        json.dump(lists, f)

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
