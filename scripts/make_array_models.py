#!/usr/bin/env python3
"""Writes small seeded Keras 3 models and their training arrays for finetune's "arrays" task.

The arrays task trains any model on NumPy arrays or CSV, as Keras's ``fit(x, y)`` does. These
cases give it models of different shapes (one or two inputs, int32 tokens, one or two outputs,
recurrent layers: masked, stacked, bidirectional, returning sequences) with data that each one can learn, so that Java and Keras
(scripts/reference_fit.py) can be run on the same thing and compared:

  tabular_mlp       Input features (8,) float32 -> Dense hidden (16, relu) -> Dense price (1)
                    data/houses.csv (120 rows) and data/houses_val.csv (40 rows):
                    header f0..f7,price; price is a fixed linear combination of the features
                    plus a little noise
  token_classifier  Input tokens (12,) int32 -> Embedding (50, 16) -> MultiHeadAttention
                    (2 heads, key_dim 8, self-attention) -> GlobalAveragePooling1D -> Dense
                    classes (3, softmax); data/train.npz (tokens, int64 [96, 12]) and
                    data/labels.npy (int64 [96]): the label is the token range most present
  image_tabular     Inputs image (16, 16, 3) and tabular (4,) -> Conv2D / GlobalAveragePooling2D
                    and Dense tab_dense, joined -> outputs kind (3, softmax) and size (1), a dict
                    {"kind", "size"}; data/train.npz (image, tabular), data/kind.npy (int64 [96]),
                    data/size.npy (float32 [96])
  bert_classifier   keras-hub BertTextClassifier (softmax, 3 classes, no dropout) on a BertBackbone of a
                    tiny configuration (vocabulary 100, 2 layers, 2 heads, hidden 16); inputs
                    token_ids, segment_ids, padding_mask; data/train.npz (int64 [96, 16] each) and
                    data/labels.npy (int64 [96])
  lstm_regressor    Input series (10, 4) -> LSTM (8, no cuDNN: a While loop) -> Dense value (1);
                    data/train.npz (series, float32 [96, 10, 4]) and data/target.npy (float32 [96])
  gru_classifier    Input tokens (15,) int32 -> Embedding (30, 8, mask_zero: padding 0 is masked) ->
                    GRU (8) -> Dense classes (3, softmax); data/train.npz (tokens, int64 [96, 15],
                    lengths 4..15, zero-padded) and data/labels.npy (int64 [96]): the label is the
                    token range most present
  recurrent_stack   Input series (12, 3) -> SimpleRNN (6, return_sequences) -> Bidirectional LSTM
                    (5 each way, concatenated; the backward one runs go_backwards) -> Dense value
                    (1); data/train.npz (series, float32 [96, 12, 3]), data/target.npy (float32 [96])
  sequence_tagger   Input series (10, 3) -> Bidirectional GRU (4 each way, return_sequences) ->
                    Dense tags (2, softmax) at every step; data/train.npz (series, float32
                    [96, 10, 3]) and data/tags.npy (int64 [96, 10]): whether the running sum of
                    the first feature is positive
  efficientnet_b0   keras.applications.EfficientNetB0 (random weights, 32x32x3 input, 3 classes): its
                    swish activations are saved as tf.custom_gradient (IdentityN + a gradient
                    function); data/train.npz (image, float32 [16, 32, 32, 3] in 0..255) and
                    data/labels.npy (int64 [16])
  sequential_cnn    keras.Sequential named "sequential": Input image (16, 16, 1), greyscale -> Conv2D conv
                    (4, 3x3, relu) -> BatchNormalization norm -> GlobalAveragePooling2D pool -> Dense
                    classes (3, softmax); Keras 3 saves its variables as sequential/conv/kernel, ...;
                    data/train.npz (image, float32 [96, 16, 16, 1] in 0..1) and data/labels.npy
                    (int64 [96]): which third of the image is brightest
  text_lookup       Inputs text (a string per example) -> TextVectorization vectorize (adapted on
                    the data: 16 tokens, 8 per text) -> Embedding words (16, 8) ->
                    GlobalAveragePooling1D; and colour (a string) -> StringLookup lookup (red, green,
                    blue; unknown -> 0) -> Embedding colours (4, 4); joined -> Dense classes (3,
                    softmax); data/train.npz (text, colour: NumPy str arrays [96]) and
                    data/labels.npy (int64 [96]): more good words, more bad words, or a blue item
  nested_base       a base model called as a layer, as a keras.applications base is in transfer
                    learning: Functional "backbone" (Input pixels (16, 16, 3) -> Conv2D conv (4,
                    relu) -> BatchNormalization norm -> GlobalAveragePooling2D pool) inside
                    Functional "nested_base" (Input image -> backbone -> Dense classes (3,
                    softmax)); Keras's summary lists backbone as one layer; data/train.npz (image,
                    float32 [96, 16, 16, 3]) and data/labels.npy (int64 [96]): the brightest channel
  any_length_lstm   Input series (None, 3): sequences of any length -> LSTM (6) -> Dense value (1);
                    data/train.npz (series, float32 [96, 8, 3]: this data's sequences have 8
                    steps) and data/target.npy (float32 [96])

Each case is written as

  <out>/<case>/model.keras       the Keras 3 model (native format), for the oracle to call and fit
  <out>/<case>/keras3_export/    Keras 3 ``model.export()``: the SavedModel finetune trains
  <out>/<case>/data/...          the training arrays
  <out>/<case>/keras.json        what Keras counts: total, trainable and non-trainable parameters

Weights and data come from fixed seeds, so every run writes the same thing. A case is written
into a temporary sibling and renamed into place, so a killed run leaves no half-written case.
Before the rename the export is checked against Keras: its ``serve`` endpoint must compute what
the model computes, and ``loaded.variables`` must be ``model.variables`` in the same order (the
oracle compares variables by position). ``serving_default`` takes each input under its Input
name and names a single output ``output_0``, the dict's outputs ``kind`` and ``size``. The LSTM
case's variables include ``seed_generator/seed_generator_state`` (int64 [2], dropout's seed, not
a weight), which ``model.keras`` does not store: a reloaded model draws another.

Usage:
  scripts/make_array_models.py [--out savedmodels/generated/arrays] [--force]
"""
import argparse
import contextlib
import io
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
from keras import layers  # noqa: E402

SEED = 1234
PRICE_WEIGHTS = np.array([0.8, -1.2, 0.5, 2.0, -0.3, 0.0, 1.1, -0.7])


# ---------------------------------------------------------------- the cases


def tabular_mlp(rng):
    features = keras.Input(shape=(8,), name="features")
    hidden = layers.Dense(16, activation="relu", name="hidden")(features)
    model = keras.Model(features, layers.Dense(1, name="price")(hidden), name="tabular_mlp")

    def houses(n):
        x = np.round(rng.standard_normal((n, 8)), 6)
        price = np.round(x @ PRICE_WEIGHTS + 0.1 * rng.standard_normal(n), 6)
        return x, price

    train, val = houses(120), houses(40)
    data = {"houses.csv": lambda path: write_houses(path, *train),
            "houses_val.csv": lambda path: write_houses(path, *val)}
    return model, data, train[0][:4].astype(np.float32)


def write_houses(path, x, price):
    header = ",".join([f"f{i}" for i in range(x.shape[1])] + ["price"])
    np.savetxt(path, np.column_stack([x, price]), fmt="%.6f", delimiter=",", header=header, comments="")


def token_classifier(rng):
    tokens = keras.Input(shape=(12,), dtype="int32", name="tokens")
    x = layers.Embedding(50, 16, name="embedding")(tokens)
    x = layers.MultiHeadAttention(num_heads=2, key_dim=8, name="attention")(x, x)
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    model = keras.Model(tokens, layers.Dense(3, activation="softmax", name="classes")(x), name="token_classifier")

    ids = rng.integers(0, 50, size=(96, 12), dtype=np.int64)
    # The class is the token range (0-16, 17-33, 34-49) with the most tokens; ties go to the lower one.
    counts = np.stack([np.sum((ids >= lo) & (ids < hi), axis=1) for lo, hi in ((0, 17), (17, 34), (34, 50))], axis=1)
    labels = np.argmax(counts, axis=1).astype(np.int64)
    data = {"train.npz": lambda path: np.savez(path, tokens=ids),
            "labels.npy": lambda path: np.save(path, labels)}
    return model, data, ids[:4].astype(np.int32)


def image_tabular(rng):
    image = keras.Input(shape=(16, 16, 3), name="image")
    tabular = keras.Input(shape=(4,), name="tabular")
    a = layers.Conv2D(4, 3, activation="relu", name="conv")(image)
    a = layers.GlobalAveragePooling2D(name="gap")(a)
    b = layers.Dense(8, activation="relu", name="tab_dense")(tabular)
    joined = layers.Concatenate(name="joined")([a, b])
    outputs = {"kind": layers.Dense(3, activation="softmax", name="kind")(joined),
               "size": layers.Dense(1, name="size")(joined)}
    model = keras.Model([image, tabular], outputs, name="image_tabular")

    images = rng.random((96, 16, 16, 3), dtype=np.float32)
    tab = rng.standard_normal((96, 4)).astype(np.float32)
    # kind: the brightest channel; size: a mix of the tabular features and the image's brightness.
    kind = np.argmax(images.mean(axis=(1, 2)), axis=1).astype(np.int64)
    size = (tab @ np.array([0.5, -1.0, 0.25, 0.75]) + 2.0 * images.mean(axis=(1, 2, 3))).astype(np.float32)
    data = {"train.npz": lambda path: np.savez(path, image=images, tabular=tab),
            "kind.npy": lambda path: np.save(path, kind),
            "size.npy": lambda path: np.save(path, size)}
    return model, data, [images[:4], tab[:4]]


def lstm_regressor(rng):
    series = keras.Input(shape=(10, 4), name="series")
    # use_cudnn=False: on a GPU, "auto" would export cuDNN's fused kernel instead of the While
    # loop that every machine can run (and differentiate), so the export depends on the machine.
    x = layers.LSTM(8, use_cudnn=False, name="lstm")(series)
    model = keras.Model(series, layers.Dense(1, name="value")(x), name="lstm_regressor")

    slope = rng.standard_normal((96, 1, 1)) * 0.2
    steps = np.arange(10, dtype=np.float64).reshape(1, 10, 1)
    walk = np.cumsum(0.1 * rng.standard_normal((96, 10, 4)), axis=1)
    values = (walk + slope * steps).astype(np.float32)
    # target: where the last step stands, plus the trend that got it there.
    target = (values[:, -1, :].mean(axis=1) + slope[:, 0, 0]).astype(np.float32)
    data = {"train.npz": lambda path: np.savez(path, series=values),
            "target.npy": lambda path: np.save(path, target)}
    return model, data, values[:4]


def gru_classifier(rng):
    tokens = keras.Input(shape=(15,), dtype="int32", name="tokens")
    x = layers.Embedding(30, 8, mask_zero=True, name="embedding")(tokens)
    x = layers.GRU(8, use_cudnn=False, name="gru")(x)
    model = keras.Model(tokens, layers.Dense(3, activation="softmax", name="classes")(x), name="gru_classifier")

    n, length = 96, 15
    lengths = rng.integers(4, length + 1, size=n)
    mask = np.arange(length)[None, :] < lengths[:, None]
    ids = (rng.integers(1, 30, size=(n, length)) * mask).astype(np.int64)
    counts = np.stack([((ids >= lo) & (ids < lo + 10) & mask).sum(axis=1) for lo in (1, 11, 21)], axis=1)
    labels = np.argmax(counts, axis=1).astype(np.int64)
    data = {"train.npz": lambda path: np.savez(path, tokens=ids),
            "labels.npy": lambda path: np.save(path, labels)}
    return model, data, ids[:4].astype(np.int32)


def recurrent_stack(rng):
    series = keras.Input(shape=(12, 3), name="series")
    x = layers.SimpleRNN(6, return_sequences=True, name="simple_rnn")(series)
    x = layers.Bidirectional(layers.LSTM(5, use_cudnn=False), name="bidirectional")(x)
    model = keras.Model(series, layers.Dense(1, name="value")(x), name="recurrent_stack")

    values = np.cumsum(0.3 * rng.standard_normal((96, 12, 3)), axis=1).astype(np.float32)
    # target: the first feature's last value against the last feature's first.
    target = (values[:, -1, 0] - 0.5 * values[:, 0, 2]).astype(np.float32)
    data = {"train.npz": lambda path: np.savez(path, series=values),
            "target.npy": lambda path: np.save(path, target)}
    return model, data, values[:4]


def sequence_tagger(rng):
    series = keras.Input(shape=(10, 3), name="series")
    x = layers.Bidirectional(layers.GRU(4, return_sequences=True, use_cudnn=False), name="bidirectional")(series)
    model = keras.Model(series, layers.Dense(2, activation="softmax", name="tags")(x), name="sequence_tagger")

    values = rng.standard_normal((96, 10, 3)).astype(np.float32)
    tags = (np.cumsum(values[:, :, 0], axis=1) > 0).astype(np.int64)
    data = {"train.npz": lambda path: np.savez(path, series=values),
            "tags.npy": lambda path: np.save(path, tags)}
    return model, data, values[:4]


def any_length_lstm(rng):
    series = keras.Input(shape=(None, 3), name="series")
    x = layers.LSTM(6, use_cudnn=False, name="lstm")(series)
    model = keras.Model(series, layers.Dense(1, name="value")(x), name="any_length_lstm")

    values = np.cumsum(0.3 * rng.standard_normal((96, 8, 3)), axis=1).astype(np.float32)
    target = (values[:, -1, :].sum(axis=1) - values[:, 0, 1]).astype(np.float32)
    data = {"train.npz": lambda path: np.savez(path, series=values),
            "target.npy": lambda path: np.save(path, target)}
    return model, data, values[:4]


def efficientnet_b0(rng):
    # A named input: keras.applications would name it keras_tensor_<n>, n counting every tensor the
    # process made before.
    model = keras.applications.EfficientNetB0(weights=None, input_tensor=keras.Input((32, 32, 3), name="image"),
                                              classes=3)
    images = (255 * rng.random((16, 32, 32, 3))).astype(np.float32)
    labels = rng.integers(0, 3, size=16).astype(np.int64)
    data = {"train.npz": lambda path: np.savez(path, image=images),
            "labels.npy": lambda path: np.save(path, labels)}
    return model, data, images[:4]


def bert_classifier(rng):
    import keras_hub  # only this case needs it

    # A BERT-style encoder from a tiny configuration (no pretrained weights can be downloaded),
    # no dropout so that Keras's fit and finetune's inference-mode step are the same function.
    backbone = keras_hub.models.BertBackbone(vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=16,
                                             intermediate_dim=32, dropout=0.0, max_sequence_length=16)
    model = keras_hub.models.BertTextClassifier(backbone, num_classes=3, preprocessor=None, activation="softmax",
                                                dropout=0.0)
    n, length = 96, 16
    lengths = rng.integers(6, length + 1, size=n)
    mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.int64)
    ids = rng.integers(1, 100, size=(n, length), dtype=np.int64) * mask
    segments = np.zeros((n, length), dtype=np.int64)
    # label: which third of the vocabulary the unpadded tokens fall in most often.
    counts = np.stack([((ids >= lo) & (ids < lo + 33) & (mask == 1)).sum(axis=1) for lo in (1, 34, 67)], axis=1)
    labels = np.argmax(counts, axis=1).astype(np.int64)
    data = {"train.npz": lambda path: np.savez(path, token_ids=ids, segment_ids=segments, padding_mask=mask),
            "labels.npy": lambda path: np.save(path, labels)}
    sample = {"token_ids": ids[:4].astype(np.int32), "segment_ids": segments[:4].astype(np.int32),
              "padding_mask": mask[:4].astype(np.int32)}
    # Keras 3.8's export cannot infer a signature for dict inputs: give it one.
    model.export_signature = [{k: tf.TensorSpec([None, None], tf.int32, name=k)
                               for k in ("token_ids", "segment_ids", "padding_mask")}]
    return model, data, sample


def sequential_cnn(rng):
    model = keras.Sequential([keras.Input((16, 16, 1), name="image"),
                              layers.Conv2D(4, 3, activation="relu", name="conv"),
                              layers.BatchNormalization(name="norm"),
                              layers.GlobalAveragePooling2D(name="pool"),
                              layers.Dense(3, activation="softmax", name="classes")], name="sequential")
    n = 96
    labels = rng.integers(0, 3, size=n).astype(np.int64)
    images = 0.3 * rng.random((n, 16, 16, 1))
    for i, label in enumerate(labels):
        images[i, :, 5 * label:5 * label + 6, 0] += 0.6
    images = images.astype(np.float32)
    data = {"train.npz": lambda path: np.savez(path, image=images),
            "labels.npy": lambda path: np.save(path, labels)}
    return model, data, images[:4]


GOOD = ["good", "great", "fine", "lovely"]
BAD = ["bad", "poor", "awful", "dull"]
PLAIN = ["the", "a", "film", "plot", "acting", "music"]


def text_lookup(rng):
    text = keras.Input(shape=(), dtype="string", name="text")
    colour = keras.Input(shape=(), dtype="string", name="colour")
    n = 96
    lengths = rng.integers(3, 9, size=n)
    words = GOOD + BAD + PLAIN
    texts = np.array([" ".join(rng.choice(words, k)) for k in lengths])
    colours = np.array(rng.choice(["red", "green", "blue", "grey"], n))  # grey is out of the vocabulary
    good = np.array([sum(w in GOOD for w in t.split()) for t in texts])
    bad = np.array([sum(w in BAD for w in t.split()) for t in texts])
    labels = np.where(colours == "blue", 2, np.where(good >= bad, 0, 1)).astype(np.int64)

    vectorize = layers.TextVectorization(max_tokens=16, output_sequence_length=8, name="vectorize")
    vectorize.adapt(texts)
    x = layers.Embedding(16, 8, name="words")(vectorize(text))
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    c = layers.Embedding(4, 4, name="colours")(layers.StringLookup(vocabulary=["red", "green", "blue"],
                                                                   name="lookup")(colour))
    joined = layers.Concatenate(name="joined")([x, c])
    model = keras.Model([text, colour], layers.Dense(3, activation="softmax", name="classes")(joined),
                        name="text_lookup")
    data = {"train.npz": lambda path: np.savez(path, text=texts, colour=colours),
            "labels.npy": lambda path: np.save(path, labels)}
    return model, data, [texts[:4], colours[:4]]


def nested_base(rng):
    pixels = keras.Input(shape=(16, 16, 3), name="pixels")
    x = layers.Conv2D(4, 3, activation="relu", name="conv")(pixels)
    x = layers.BatchNormalization(name="norm")(x)
    backbone = keras.Model(pixels, layers.GlobalAveragePooling2D(name="pool")(x), name="backbone")
    image = keras.Input(shape=(16, 16, 3), name="image")
    model = keras.Model(image, layers.Dense(3, activation="softmax", name="classes")(backbone(image)),
                        name="nested_base")
    images = rng.random((96, 16, 16, 3), dtype=np.float32)
    labels = np.argmax(images.mean(axis=(1, 2)), axis=1).astype(np.int64)
    data = {"train.npz": lambda path: np.savez(path, image=images),
            "labels.npy": lambda path: np.save(path, labels)}
    return model, data, images[:4]


CASES = {"tabular_mlp": tabular_mlp, "token_classifier": token_classifier,
         "image_tabular": image_tabular, "lstm_regressor": lstm_regressor, "bert_classifier": bert_classifier,
         "gru_classifier": gru_classifier, "recurrent_stack": recurrent_stack, "sequence_tagger": sequence_tagger,
         "any_length_lstm": any_length_lstm, "efficientnet_b0": efficientnet_b0, "sequential_cnn": sequential_cnn,
         "text_lookup": text_lookup, "nested_base": nested_base}
DATA_FILES = {"tabular_mlp": ["houses.csv", "houses_val.csv"], "token_classifier": ["train.npz", "labels.npy"],
              "image_tabular": ["train.npz", "kind.npy", "size.npy"], "lstm_regressor": ["train.npz", "target.npy"],
              "bert_classifier": ["train.npz", "labels.npy"], "gru_classifier": ["train.npz", "labels.npy"],
              "recurrent_stack": ["train.npz", "target.npy"], "sequence_tagger": ["train.npz", "tags.npy"],
              "any_length_lstm": ["train.npz", "target.npy"], "efficientnet_b0": ["train.npz", "labels.npy"],
              "sequential_cnn": ["train.npz", "labels.npy"], "text_lookup": ["train.npz", "labels.npy"],
              "nested_base": ["train.npz", "labels.npy"]}


# ---------------------------------------------------------------- checking the export


def describe_signature(loaded):
    """One line: serving_default's inputs and outputs, name:dtype shape."""
    fn = loaded.signatures["serving_default"]

    def spec(name, s):
        return f"{name}:{s.dtype.name}{list(s.shape)}"

    inputs = [spec(k, s) for k, s in sorted(fn.structured_input_signature[1].items())]
    outputs = [spec(k, s) for k, s in sorted(fn.structured_outputs.items())]
    return f"serving_default({', '.join(inputs)}) -> {', '.join(outputs)}"


def flat_outputs(outputs):
    """Model or endpoint outputs as a list of arrays (a dict in key order)."""
    if isinstance(outputs, dict):
        return [np.asarray(outputs[k]) for k in sorted(outputs)]
    if isinstance(outputs, (list, tuple)):
        return [np.asarray(o) for o in outputs]
    return [np.asarray(outputs)]


def export_vs_keras(loaded, model, sample):
    """Max |serve(x) - model(x)| over the outputs, on the sample rows."""
    served = flat_outputs(loaded.serve(sample))
    expected = flat_outputs(model(sample, training=False))
    if len(served) != len(expected):
        raise SystemExit(f"{model.name}: serve gives {len(served)} outputs, the model {len(expected)}")
    return max(float(np.max(np.abs(a - b))) for a, b in zip(served, expected))


def check_variable_order(label, variables, model, states_may_differ=False):
    """``variables`` must be ``model.variables`` in the same order, with the same values.

    ``model.variables`` also holds state that is not a weight: the seed of a layer that could
    drop out (LSTM's ``seed_generator_state``). ``model.keras`` does not store it, so a reloaded
    model draws a new one; with ``states_may_differ`` such state need only have the same shape."""
    weights = {id(w) for w in model.weights}
    theirs = list(variables)
    if len(model.variables) != len(theirs):
        raise SystemExit(f"{model.name}: {label} has {len(theirs)} variables, the model {len(model.variables)}")
    for i, (v, w) in enumerate(zip(model.variables, theirs)):
        a, b = np.asarray(v.numpy()), np.asarray(w.numpy())
        same = a.shape == b.shape and a.dtype == b.dtype
        if same and not (states_may_differ and id(v) not in weights):
            same = np.array_equal(a, b)
        if not same:
            raise SystemExit(f"{model.name}: {label} variable {i} is not {v.path} {a.dtype.name}{list(a.shape)}"
                             f" (it is {b.dtype.name}{list(b.shape)}); the oracle compares variables by position")


# ---------------------------------------------------------------- writing one case


def complete(case_dir, name):
    needed = [os.path.join(case_dir, "model.keras"), os.path.join(case_dir, "keras3_export", "saved_model.pb"),
              os.path.join(case_dir, "keras.json")]
    needed += [os.path.join(case_dir, "data", f) for f in DATA_FILES[name]]
    return all(os.path.exists(p) for p in needed)


def write_case(root, name, index):
    keras.utils.set_random_seed(SEED + index)
    rng = np.random.default_rng(SEED + index)
    model, data, sample = CASES[name](rng)
    target = os.path.join(root, name)
    tmp = tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=root)
    try:
        os.makedirs(os.path.join(tmp, "data"))
        for filename, write in data.items():
            write(os.path.join(tmp, "data", filename))
        model.save(os.path.join(tmp, "model.keras"))
        export_dir = os.path.join(tmp, "keras3_export")
        with contextlib.redirect_stdout(io.StringIO()):  # Keras prints "Saved artifact at ..." regardless
            model.export(export_dir, verbose=False, input_signature=getattr(model, "export_signature", None))

        loaded = tf.saved_model.load(export_dir)
        diff = export_vs_keras(loaded, model, sample)
        if diff > 1e-5:
            raise SystemExit(f"{name}: the export differs from Keras by {diff:.3g}")
        check_variable_order("the export", loaded.variables, model)
        reloaded = keras.saving.load_model(os.path.join(tmp, "model.keras"), compile=False)
        check_variable_order("model.keras reloaded", reloaded.variables, model, states_may_differ=True)
        signature = describe_signature(loaded)
        trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
        frozen = int(sum(np.prod(w.shape) for w in model.non_trainable_weights))
        if trainable + frozen != model.count_params():
            raise SystemExit(f"{name}: weights count {trainable + frozen}, count_params {model.count_params()}")
        with open(os.path.join(tmp, "keras.json"), "w") as f:
            json.dump({"total_params": trainable + frozen, "trainable_params": trainable,
                       "non_trainable_params": frozen}, f, indent=1)
            f.write("\n")

        if os.path.exists(target):
            shutil.rmtree(target)
        os.rename(tmp, target)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
    print(f"wrote {target} (export vs Keras: {diff:.2e})", flush=True)
    print(f"  {signature}", flush=True)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                                      "savedmodels", "generated", "arrays"),
                        help="root folder for the cases (default: savedmodels/generated/arrays)")
    parser.add_argument("--force", action="store_true", help="rewrite cases that are already complete")
    args = parser.parse_args(argv)
    root = os.path.abspath(args.out)
    os.makedirs(root, exist_ok=True)
    for index, name in enumerate(CASES):
        case_dir = os.path.join(root, name)
        if complete(case_dir, name) and not args.force:
            print(f"kept {case_dir} (complete; --force rewrites it)", flush=True)
            continue
        write_case(root, name, index)


if __name__ == "__main__":
    main(sys.argv[1:])
