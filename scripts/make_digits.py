#!/usr/bin/env python3
"""The digits transfer task behind finetune's demo: scikit-learn's handwritten digits as 32x32
RGB PNGs, and a small VGG16 pretrained on the source task.

- Source task: digits 0-4. The width-reduced VGG16 (``scripts/export_keras_models.py``'s
  ``vgg16_small`` topology, 5 classes) is trained on them with Keras (seeded) and exported as
  ``savedmodels/digits_vgg16/keras3_export`` (Keras 3 ``model.export()``, with ``expected.json``
  and a sample, like every fixture) and ``savedmodels/digits_vgg16/keras/model.keras``.
- Target task: digits 5-9, written as PNG files: ``testdata/digits/train/<digit>/`` holds
  ``--per-class`` labelled images per class (20 by default), ``testdata/digits/test/<digit>/``
  the rest of them.

Images: the 8x8 scans (0..16) scaled to 0..255, resized to 32x32 with ``tf.image.resize``
(bilinear), grey replicated to RGB; the model sees them through
``keras.applications.vgg16.preprocess_input``, as finetune's "caffe" preprocessing does.

Usage: scripts/make_digits.py [--force] [--per-class 20] [--epochs 30]
"""
import argparse
import json
import os
import shutil
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_keras_models as fixtures  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SEED = 1234


def digits_as_images():
    from sklearn.datasets import load_digits

    d = load_digits()
    scans = d.images.astype(np.float32) * (255.0 / 16.0)
    big = tf.image.resize(scans[..., None], (32, 32), method="bilinear").numpy()
    rgb = np.clip(np.round(np.repeat(big, 3, axis=-1)), 0, 255).astype(np.uint8)
    return rgb, d.target.astype(np.int64)


def write_pngs(images, labels, folder):
    for i, (img, label) in enumerate(zip(images, labels)):
        target = os.path.join(folder, str(label))
        os.makedirs(target, exist_ok=True)
        tf.io.write_file(os.path.join(target, f"{label}_{i:04d}.png"), tf.io.encode_png(img))


def pretrain(images, labels, epochs):
    keras.utils.set_random_seed(SEED)
    with fixtures.narrowed(keras.layers, 8, dense_names=("fc1", "fc2")):
        model = keras.applications.VGG16(weights=None, include_top=True, input_shape=(32, 32, 3), classes=5)
    x = keras.applications.vgg16.preprocess_input(images.astype(np.float32))
    rng = np.random.RandomState(SEED)
    order = rng.permutation(len(x))
    x, y = x[order], labels[order]
    split = int(0.85 * len(x))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    # Early stopping on the held-out source images, as pretraining would be run: a model trained
    # to zero loss on the source task carries features too specialised to transfer well.
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
    model.fit(x[:split], y[:split], batch_size=32, epochs=epochs, validation_data=(x[split:], y[split:]), verbose=2,
              callbacks=[stop])
    _, accuracy = model.evaluate(x[split:], y[split:], verbose=0)
    # The weights alone, in a fresh (uncompiled) model: no optimizer state in what we ship.
    with fixtures.narrowed(keras.layers, 8, dense_names=("fc1", "fc2")):
        clean = keras.applications.VGG16(weights=None, include_top=True, input_shape=(32, 32, 3), classes=5)
    clean.set_weights(model.get_weights())
    return clean, float(accuracy)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--force", action="store_true", help="rewrite what exists")
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args(argv)
    data = os.path.join(ROOT, "testdata", "digits")
    models = os.path.join(ROOT, "savedmodels")
    marker = os.path.join(models, "digits_vgg16", "keras3_export", "expected.json")
    if os.path.exists(marker) and os.path.isdir(data) and not args.force:
        print(f"kept {data} and {os.path.dirname(marker)} (--force rewrites them)")
        return
    images, labels = digits_as_images()
    source = labels < 5
    target = ~source
    rng = np.random.RandomState(SEED)
    train_idx, test_idx = [], []
    for digit in range(5, 10):
        idx = np.flatnonzero(labels == digit)
        rng.shuffle(idx)
        train_idx += list(idx[:args.per_class])
        test_idx += list(idx[args.per_class:])
    shutil.rmtree(data, ignore_errors=True)
    write_pngs(images[train_idx], labels[train_idx], os.path.join(data, "train"))
    write_pngs(images[test_idx], labels[test_idx], os.path.join(data, "test"))

    model, accuracy = pretrain(images[source], labels[source], args.epochs)
    print(f"source task (digits 0-4): held-out accuracy {accuracy:.3f}", flush=True)
    fixtures.save_keras(model, models, "digits_vgg16")
    x = keras.applications.vgg16.preprocess_input(images[test_idx][:2].astype(np.float32))
    y = model(x, training=False).numpy()
    fixtures.write_fixture(os.path.join(models, "digits_vgg16", "keras3_export"), "keras3_export",
                           fixtures.keras3_export(model), model, y, x, "digits_vgg16",
                           extra={"source_accuracy": accuracy, "source_task": "digits 0-4",
                                  "target_task": "digits 5-9", "per_class": args.per_class})
    with open(os.path.join(data, "README.md"), "w") as f:
        f.write(f"scikit-learn digits 5-9 as 32x32 RGB PNGs, written by scripts/make_digits.py: train/ holds "
                f"{args.per_class} per class, test/ the other {len(test_idx)} images.\n")
    print(f"wrote {len(train_idx)} training and {len(test_idx)} test images under {data}")


if __name__ == "__main__":
    main(sys.argv[1:])
