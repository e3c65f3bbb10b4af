#!/usr/bin/env python3
"""The numerical oracle for finetune's "arrays" task: Keras's own ``compile`` + ``fit`` on the same data.

finetune trains a SavedModel on arrays (NumPy or CSV) as Keras's ``model.fit(x, y)`` does, and
exports the result. This script loads the Keras model (``model.keras``) that the SavedModel was
exported from, fits it with Keras on the same rows, with the same loss, optimizer and batch size,
and compares its variables with the ones in finetune's export, position by position (a Keras 3
export's ``loaded.variables`` is ``model.variables`` in order; scripts/make_array_models.py
checks that for its cases, and the base export is checked again here).

Data:
  --inputs FILE        .npz (one array per model input, under the input's name), .npy (a
                       single-input model) or .csv (a header row; every column not named in
                       --target-columns is a feature, in file order, as one float32 matrix for
                       the single input)
  --targets FILE.npy   the targets of a single-output model
  --target-columns C   CSV columns that are the targets (comma-separated): float32 [n] for
                       one column, [n, k] for several
  --targets-by-output  JSON {"<output>": "<file.npy>"} for a model with several outputs
  --image-folder DIR   instead of --inputs: a folder of class folders, read as Keras's
                       image_dataset_from_directory reads it (unshuffled; labels from the
                       folders) at --image-size HxW, --color-mode rgb|grayscale, then
                       --preprocess none|tf (x / 127.5 - 1)
  --epochs N           epochs of --steps batches (default 1)

int64 arrays feed int32 inputs as int32, as Keras's data adapter would. The first
steps * batch_size rows are used, in order (``shuffle=False``, one epoch).

Training: --loss NAME (a Keras loss name: sparse_categorical_crossentropy, categorical_crossentropy,
binary_crossentropy, mean_squared_error, mean_absolute_error, huber, ...) or --loss-json
{"<output>": NAME} keyed by output layer name, optional --loss-weights JSON; --optimizer JSON such as
{"name": "sgd", "learning_rate": 0.01, "momentum": 0.9} (the Keras optimizer's own defaults for
whatever is not given). Compiled with no metrics, jit_compile=False, not eagerly.
BatchNormalization layers normalise with their moving statistics during the fit (gamma and beta
train), as finetune keeps them: Keras's advice for fine-tuning; dropout is left as Keras runs it.

Variables that are not weights (an LSTM's ``seed_generator_state``: ``model.keras`` does not store
it) start from the base export's values, as finetune's do.

Writes --out (JSON)::

  {"order_check": max |base export - model.keras| over the weights (0.0 expected),
   "losses": Keras's logged loss after each step: the running mean over the epoch so far,
   "step_losses": the loss of each step alone, k * losses[k] - (k - 1) * losses[k - 1],
   "variables": [{"index", "path", "shape", "trainable", "weight",
                  "moved": how far Keras's fit moved it, relative to the initial value,
                  "java_vs_keras": finetune's value against Keras's, relative to Keras's,
                  "java_vs_keras_abs": the same, max|a - b| alone,
                  "keras_max_abs": max|a|, Keras's largest element,
                  "moved_abs": max|a - initial|, the most Keras's fit changed an element}],
   "max_java_vs_keras", "max_moved", "min_moved_trainable",
   "tfsm": {"serving_default": max |TFSMLayer - Keras| on 4 rows, or the error, "serve": the same},
   "trainable_variables": how many the reloaded export lists}

A relative difference is max|a - b| / max|a| (max|a - b| where a is all zeros). A variable that
hardly moves has a relative difference of noise over noise: MultiHeadAttention's key bias, for one,
gets a zero gradient (softmax ignores a score added to every key), so Keras leaves it at ~1e-14;
judge such variables by java_vs_keras_abs. The exit status is
0 however large the differences are (the caller judges them), 2 for bad arguments, 1 when an
export's variables do not line up with the model's.

Usage:
  scripts/reference_fit.py --model <case>/model.keras --base-export <case>/keras3_export --java-export DIR
      --inputs FILE [--targets FILE.npy | --target-columns price] [--targets-by-output JSON]
      --loss NAME | --loss-json JSON [--loss-weights JSON]
      --optimizer JSON --batch-size N --steps N --out result.json
      [--onednn on|off] [--save-keras DIR] [--keras-floor DIR]

--onednn names TensorFlow's kernel library for this run (its default depends on the CPU);
--save-keras writes Keras's fitted variables (DIR/<index>.npy), and --keras-floor compares this
run's with those of another run (with the other kernel library): each variable then carries
"keras_floor", how far Keras moves from itself with the kernel library alone, and the result
"max_keras_floor". --java-floor DIR names a second finetune export of the same training with
the examples in another order: each variable then carries "java_floor", how far the order of
float sums alone moves it.
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

SEED = 1234


class BadArguments(Exception):
    """A problem with the command line: reported in one line, exit status 2."""


class Misaligned(Exception):
    """An export whose variables do not line up with the model's: exit status 1."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        raise BadArguments(message)


# ---------------------------------------------------------------- arguments


def parse_json(text, what):
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise BadArguments(f"{what} is not JSON ({e})")


def existing(path, what):
    if not os.path.exists(path):
        raise BadArguments(f"{what} {path} does not exist")
    return path


def make_optimizer(spec):
    if not isinstance(spec, dict) or "name" not in spec:
        raise BadArguments('--optimizer must be a JSON object with a "name"')
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    try:
        cls = type(keras.optimizers.get(spec["name"]))
    except ValueError:
        raise BadArguments(f"unknown optimizer {spec['name']!r}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise BadArguments(f"optimizer {spec['name']}: {e}")


def check_loss(name):
    try:
        keras.losses.get(name)
    except ValueError:
        raise BadArguments(f"unknown loss {name!r}")
    return name


CROSS_ENTROPIES = {"sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy,
                   "categorical_crossentropy": keras.losses.CategoricalCrossentropy,
                   "binary_crossentropy": keras.losses.BinaryCrossentropy}


def logits(name, from_logits):
    """The loss as compile takes it: its name, or with --from-logits a cross-entropy object."""
    if from_logits and name in CROSS_ENTROPIES:
        return CROSS_ENTROPIES[name](from_logits=True)
    return name


def batch_norm_in_inference_mode(model):
    """BatchNormalization normalises with its moving statistics in fit too, as finetune keeps it
    (Keras's advice for fine-tuning); gamma and beta still train, dropout still drops."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            call = layer.call
            layer.call = lambda inputs, training=None, mask=None, call=call: call(inputs, training=False, mask=mask)


def structure(model, which):
    """model.input or model.output; None for a loaded Sequential, which Keras 3.8 gives none until called."""
    try:
        return getattr(model, which)
    except AttributeError:
        return None


def output_names_of(model):
    """A Functional model's output names; a Sequential (which has none in Keras 3.8), its one output's."""
    names = getattr(model, "output_names", None)
    return list(names) if names else [t.name for t in model.outputs]


def losses_and_weights(args, output_names):
    """The ``loss`` and ``loss_weights`` arguments of ``compile``."""
    if args.loss_json is not None:
        loss = parse_json(args.loss_json, "--loss-json")
        if not isinstance(loss, dict):
            raise BadArguments("--loss-json must be a JSON object {output: loss}")
        check_names(loss, output_names, "--loss-json")
        loss = {k: logits(check_loss(v), args.from_logits) for k, v in loss.items()}
    else:
        loss = logits(check_loss(args.loss), args.from_logits)
    weights = None
    if args.loss_weights is not None:
        weights = parse_json(args.loss_weights, "--loss-weights")
        if isinstance(weights, dict):
            check_names(weights, output_names, "--loss-weights")
    return loss, weights


def check_names(mapping, output_names, what):
    unknown = [k for k in mapping if k not in output_names]
    if unknown:
        raise BadArguments(f"{what} names {unknown}, the model's outputs are {list(output_names)}")


# ---------------------------------------------------------------- data


def read_csv(path, target_columns):
    """(features float32 [n, f], targets float32 [n] / [n, k] or None) from a CSV with a header row."""
    with open(path) as f:
        header = [c.strip() for c in f.readline().strip().split(",")]
    missing = [c for c in target_columns if c not in header]
    if missing:
        raise BadArguments(f"{path} has no column(s) {missing}; its header is {header}")
    table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2).astype(np.float32)
    if table.shape[1] != len(header):
        raise BadArguments(f"{path}: rows have {table.shape[1]} values, the header {len(header)}")
    target_idx = [header.index(c) for c in target_columns]
    feature_idx = [i for i in range(len(header)) if i not in target_idx]
    targets = None
    if target_idx:
        targets = table[:, target_idx[0]] if len(target_idx) == 1 else table[:, target_idx]
    return table[:, feature_idx], targets


def read_inputs(path, input_names, target_columns):
    """({input name: array}, CSV targets or None)."""
    if os.path.isdir(path):  # a folder of INPUT.npy files, as finetune takes it
        missing = [n for n in input_names if not os.path.isfile(os.path.join(path, n + ".npy"))]
        if missing:
            raise BadArguments(f"{path} has no .npy for the model's inputs {missing}")
        return {n: np.load(os.path.join(path, n + ".npy")) for n in input_names}, None
    ext = os.path.splitext(path)[1].lower()
    if ext == ".csv" or ext == ".npy":
        if len(input_names) != 1:
            raise BadArguments(f"a {ext} file feeds one input; the model has {input_names} (use .npz)")
        if ext == ".npy":
            return {input_names[0]: np.load(path)}, None
        features, targets = read_csv(path, target_columns)
        return {input_names[0]: features}, targets
    if ext == ".npz":
        with np.load(path) as npz:
            missing = [n for n in input_names if n not in npz.files]
            if missing:
                raise BadArguments(f"{path} holds {npz.files}; the model's inputs {missing} are not there")
            return {n: npz[n] for n in input_names}, None
    raise BadArguments(f"--inputs must be .npz, .npy, .csv or a folder of .npy files, not {path}")


def read_image_folder(args, input_names):
    """({input: images}, labels) from a folder of class folders, as Keras's
    image_dataset_from_directory reads it (unshuffled), then the preprocessing named."""
    if len(input_names) != 1:
        raise BadArguments(f"an image folder feeds one input; the model has {input_names}")
    h, w = (int(v) for v in args.image_size.lower().split("x"))
    data = keras.utils.image_dataset_from_directory(
        existing(args.image_folder, "--image-folder"), labels="inferred", label_mode="int",
        color_mode=args.color_mode, batch_size=None, image_size=(h, w), shuffle=False, interpolation="bilinear")
    images, labels = [], []
    for x, y in data:
        images.append(x.numpy())
        labels.append(y.numpy())
    images = np.stack(images).astype(np.float32)
    if args.preprocess == "tf":
        images = images / 127.5 - 1.0
    return {input_names[0]: images.astype(np.float32)}, np.asarray(labels, dtype=np.int32)


def read_targets(args, output_names, csv_targets):
    """{output name: array}."""
    if args.targets_by_output is not None:
        by_output = parse_json(args.targets_by_output, "--targets-by-output")
        if not isinstance(by_output, dict):
            raise BadArguments("--targets-by-output must be a JSON object {output: file.npy}")
        check_names(by_output, output_names, "--targets-by-output")
        targets = {k: np.load(existing(v, f"targets of {k}")) for k, v in by_output.items()}
    elif args.targets is not None:
        if len(output_names) != 1:
            raise BadArguments(f"--targets is for a single output; the model has {list(output_names)}"
                               " (use --targets-by-output)")
        targets = {output_names[0]: np.load(existing(args.targets, "--targets"))}
    elif csv_targets is not None:
        if len(output_names) != 1:
            raise BadArguments(f"CSV targets are for a single output; the model has {list(output_names)}")
        targets = {output_names[0]: csv_targets}
    else:
        raise BadArguments("no targets: give --targets, --target-columns or --targets-by-output")
    missing = [n for n in output_names if n not in targets]
    if missing:
        raise BadArguments(f"no targets for output(s) {missing}")
    return targets


def like_inputs(model, arrays):
    """The arrays in the structure the model takes (one array, a list or a dict), int64 -> int32
    where the input is int32; text (NumPy str or bytes arrays) as string tensors, which Keras's
    fit takes where it refuses NumPy's text dtypes."""
    def cast(t):
        a = arrays[t.name]
        if a.dtype.kind in "US":
            return tf.constant(a)
        return a.astype(np.int32) if a.dtype == np.int64 and t.dtype == "int32" else a

    if isinstance(structure(model, "input"), dict):
        return {k: cast(t) for k, t in model.input.items()}
    if len(model.inputs) == 1:
        return cast(model.inputs[0])
    return [cast(t) for t in model.inputs]


def like_outputs(model, targets):
    if isinstance(structure(model, "output"), dict):
        return {k: targets[k] for k in model.output}
    names = output_names_of(model)
    if len(names) == 1:
        return targets[names[0]]
    return [targets[n] for n in names]


def first_rows(data, n):
    arrays = tf.nest.flatten(data)
    short = [a.shape[0] for a in arrays if a.shape[0] < n]
    if short:
        raise BadArguments(f"steps * batch size is {n} rows, the data has {min(short)}")
    return tf.nest.map_structure(lambda a: a[:n], data)


# ---------------------------------------------------------------- comparing variables


def relative_diff(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    diff = float(np.max(np.abs(a - b), initial=0.0))
    scale = float(np.max(np.abs(a), initial=0.0))
    return diff / scale if scale > 0 else diff


def export_variables(path, what, model):
    """The export's variables as arrays, after checking that they line up with ``model.variables``."""
    loaded = tf.saved_model.load(path)
    if not hasattr(loaded, "variables"):
        raise Misaligned(f"{what} {path} has no top-level `variables` list to compare by position")
    values = [np.asarray(v.numpy()) for v in loaded.variables]
    ours = model.variables
    if len(values) != len(ours):
        raise Misaligned(f"{what} has {len(values)} variables, the model {len(ours)}")
    for i, (a, v) in enumerate(zip(values, ours)):
        if tuple(a.shape) != tuple(v.shape):
            raise Misaligned(f"{what} variable {i} has shape {list(a.shape)}, the model's ({v.path}) "
                             f"{list(v.shape)}: the variables are not in the model's order")
    return values


def start_from_base(model, base):
    """order_check over the weights; variables that are not weights take the base export's values."""
    weights = {id(w) for w in model.weights}
    order_check = 0.0
    for v, b in zip(model.variables, base):
        if id(v) in weights:
            order_check = max(order_check, float(np.max(np.abs(v.numpy().astype(np.float64) - b), initial=0.0)))
        else:
            v.assign(b.astype(v.dtype))
    return order_check


# ---------------------------------------------------------------- fitting


class LossRecorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(logs["loss"]))


def step_losses(running):
    """Each step's own loss from Keras's running means (all batches the same size)."""
    return [(k + 1) * m - k * (running[k - 1] if k else 0.0) for k, m in enumerate(running)]


def fit(model, x, y, args, loss, loss_weights, optimizer):
    model.compile(optimizer=optimizer, loss=loss, loss_weights=loss_weights,
                  jit_compile=False, run_eagerly=False)
    recorder = LossRecorder()
    model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, shuffle=False, verbose=0, callbacks=[recorder])
    return recorder.losses


def compare(model, initial, java):
    trainable = {id(v) for v in model.trainable_variables}
    weights = {id(v) for v in model.weights}
    rows = []
    for i, (v, start, theirs) in enumerate(zip(model.variables, initial, java)):
        ours = np.asarray(v.numpy())
        rows.append({"index": i, "path": v.path, "shape": list(ours.shape),
                     "trainable": id(v) in trainable, "weight": id(v) in weights,
                     "moved": relative_diff(start, ours), "java_vs_keras": relative_diff(ours, theirs),
                     "java_vs_keras_abs": float(np.max(np.abs(ours.astype(np.float64) - theirs), initial=0.0)),
                     "keras_max_abs": float(np.max(np.abs(ours.astype(np.float64)), initial=0.0)),
                     "moved_abs": float(np.max(np.abs(ours.astype(np.float64) - start), initial=0.0))})
    return rows


def run(args):
    model = keras.saving.load_model(existing(args.model, "--model"), compile=False)
    input_names = [t.name for t in model.inputs]
    output_names = output_names_of(model)
    target_columns = [c for c in (args.target_columns or "").split(",") if c]
    loss, loss_weights = losses_and_weights(args, output_names)
    optimizer = make_optimizer(parse_json(args.optimizer, "--optimizer"))
    if args.image_folder:
        arrays, csv_targets = read_image_folder(args, input_names)
    else:
        arrays, csv_targets = read_inputs(existing(args.inputs, "--inputs"), input_names, target_columns)
    targets = read_targets(args, output_names, csv_targets)
    rows = args.steps * args.batch_size
    x = first_rows(like_inputs(model, arrays), rows)
    y = first_rows(like_outputs(model, targets), rows)
    existing(args.base_export, "--base-export")
    existing(args.java_export, "--java-export")

    order_check = start_from_base(model, export_variables(args.base_export, "the base export", model))
    batch_norm_in_inference_mode(model)
    initial = [np.asarray(v.numpy()) for v in model.variables]
    keras.utils.set_random_seed(SEED)
    losses = fit(model, x, y, args, loss, loss_weights, optimizer)
    java = export_variables(args.java_export, "the Java export", model)
    variables = compare(model, initial, java)
    if args.save_keras:
        os.makedirs(args.save_keras, exist_ok=True)
        for i, v in enumerate(model.variables):
            np.save(os.path.join(args.save_keras, f"{i}.npy"), np.asarray(v.numpy()))
    if args.java_floor:
        other = export_variables(args.java_floor, "the other Java export", model)
        for i, values in enumerate(java):
            variables[i]["java_floor"] = relative_diff(values, other[i])
    if args.keras_floor:
        for i, v in enumerate(model.variables):
            other = np.load(existing(os.path.join(args.keras_floor, f"{i}.npy"), "--keras-floor"))
            variables[i]["keras_floor"] = relative_diff(np.asarray(v.numpy()), other)
    endpoints = through_tfsm_layer(args.java_export, model, first_rows(x, 4))

    trainable_moves = [r["moved"] for r in variables if r["trainable"]]
    return {
        "order_check": order_check,
        "losses": losses,
        "losses_are": "Keras's logged loss after each step: the running mean over the epoch so far",
        "step_losses": step_losses(losses),
        "step_losses_are": "each step's own loss, k * losses[k] - (k - 1) * losses[k - 1] (1-based k)",
        "variables": variables,
        "max_java_vs_keras": max((r["java_vs_keras"] for r in variables), default=0.0),
        "max_keras_floor": max((r.get("keras_floor", 0.0) for r in variables), default=0.0),
        "max_java_floor": max((r.get("java_floor", 0.0) for r in variables), default=0.0),
        "max_moved": max((r["moved"] for r in variables), default=0.0),
        "min_moved_trainable": min(trainable_moves, default=0.0),
        "tfsm": endpoints,
        "trainable_variables": len(tf.saved_model.load(args.java_export).trainable_variables),
    }


def through_tfsm_layer(export, model, x):
    """For each endpoint, how far keras.layers.TFSMLayer's outputs on ``x`` are from the fitted Keras
    model's (max |a - b| over the outputs), or the error that stopped the layer from taking it.

    One input goes in as a tensor; several go to ``serve`` as the structure Keras's own export takes
    (a list, or a dict for a model called on a dict); ``serving_default`` takes them by keyword only
    when there is one, as with Keras's own exports."""
    expected = model(x, training=False)
    expected = [np.asarray(expected[k]) for k in sorted(expected)] if isinstance(expected, dict) \
        else [np.asarray(e) for e in expected] if isinstance(expected, (list, tuple)) else [np.asarray(expected)]
    out = {}
    for endpoint in ("serving_default", "serve"):
        try:
            layer = keras.layers.TFSMLayer(export, call_endpoint=endpoint)
            got = layer(x)
            if isinstance(got, dict):
                got = [np.asarray(got[k]) for k in sorted(got)]
            elif isinstance(got, (list, tuple)):
                got = [np.asarray(g) for g in got]
            else:
                got = [np.asarray(got)]
            if len(got) != len(expected):
                out[endpoint] = f"{len(got)} outputs for Keras's {len(expected)}"
                continue
            out[endpoint] = max(float(np.max(np.abs(a.astype(np.float64) - b), initial=0.0))
                                for a, b in zip(expected, got))
        except Exception as e:  # noqa: BLE001 - the caller judges which endpoints must work
            out[endpoint] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return out


def main(argv):
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="the Keras model (model.keras)")
    parser.add_argument("--base-export", required=True, help="the SavedModel that training started from")
    parser.add_argument("--java-export", required=True, help="the SavedModel finetune exported after training")
    sources = parser.add_mutually_exclusive_group(required=True)
    sources.add_argument("--inputs", help=".npz, .npy or .csv")
    sources.add_argument("--image-folder", help="a folder of class folders of images (labels from the folders)")
    parser.add_argument("--image-size", default="0x0", help="HxW the images are resized to (--image-folder)")
    parser.add_argument("--color-mode", default="rgb", choices=["rgb", "grayscale"], help="as Keras names it")
    parser.add_argument("--preprocess", default="none", choices=["none", "tf"], help="applied to the images")
    parser.add_argument("--epochs", type=int, default=1, help="epochs of --steps batches each")
    parser.add_argument("--targets", help="the targets (.npy) of a single-output model")
    parser.add_argument("--target-columns", help="CSV target column(s), comma-separated")
    parser.add_argument("--targets-by-output", help='JSON {"<output>": "<file.npy>"}')
    losses = parser.add_mutually_exclusive_group(required=True)
    losses.add_argument("--loss", help="a Keras loss name")
    losses.add_argument("--loss-json", help='JSON {"<output>": "<Keras loss name>"}')
    parser.add_argument("--loss-weights", help='JSON {"<output>": weight} (or a list)')
    parser.add_argument("--from-logits", action="store_true",
                        help="the outputs are logits: cross-entropies take from_logits=True")
    parser.add_argument("--optimizer", required=True, help='JSON such as {"name": "adam", "learning_rate": 0.001}')
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--out", required=True, help="where to write the result (JSON)")
    parser.add_argument("--onednn", choices=["on", "off"], help="TensorFlow's kernel library for this run")
    parser.add_argument("--save-keras", help="write Keras's fitted variables to DIR/<index>.npy")
    parser.add_argument("--keras-floor", help="compare with the variables another run saved in DIR")
    parser.add_argument("--java-floor", help="another finetune export of the same training, its examples in"
                        " another order: each variable gets java_floor, how far the order alone moves it")
    try:
        args = parser.parse_args(argv)
        if args.batch_size < 1 or args.steps < 1:
            raise BadArguments("--batch-size and --steps must be at least 1")
        result = run(args)
    except BadArguments as e:
        print(f"reference_fit.py: error: {e}", file=sys.stderr)
        return 2
    except Misaligned as e:
        print(f"reference_fit.py: {e}", file=sys.stderr)
        return 1

    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    losses = result["losses"]
    print(f"reference_fit: {args.steps} steps of {args.batch_size}, loss (running mean) {losses[0]:.6f} -> "
          f"{losses[-1]:.6f}, order check {result['order_check']:.2e}, max java vs keras "
          f"{result['max_java_vs_keras']:.2e}, moved {result['min_moved_trainable']:.2e}.."
          f"{result['max_moved']:.2e} -> {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
