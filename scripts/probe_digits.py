#!/usr/bin/env python3
"""How much do the pretrained digits features know about the target task? A linear probe.

For the small VGG16 pretrained on digits 0-4 (savedmodels/digits_vgg16/keras/model.keras) and for
the same architecture with random weights (seeds 1-3), take each block's pooled output on the
target task's images (testdata/digits, digits 5-9), standardise it, fit a logistic regression on
the 100 training images and report its accuracy: 5-fold cross-validated on the training images,
and on the 796 test images. If pretraining taught the network something the target task can use,
the pretrained rows beat the random ones.

Usage: scripts/probe_digits.py   (run with the project's venv: .venv/bin/python)
"""
import glob
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import StratifiedKFold, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_keras_models as fixtures  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
LAYERS = ["block2_pool", "block3_pool", "block4_pool", "block5_pool", "fc1"]


def images(folder):
    paths = sorted(glob.glob(os.path.join(folder, "*", "*.png")))
    x = np.array([tf.io.decode_png(tf.io.read_file(p), channels=3).numpy() for p in paths], np.float32)
    y = np.array([int(os.path.basename(os.path.dirname(p))) for p in paths])
    return keras.applications.vgg16.preprocess_input(x), y


def random_model(seed):
    keras.utils.set_random_seed(seed)
    with fixtures.narrowed(keras.layers, 8, dense_names=("fc1", "fc2")):
        return keras.applications.VGG16(weights=None, include_top=True, input_shape=(32, 32, 3), classes=5)


def main():
    xtr, ytr = images(os.path.join(ROOT, "testdata", "digits", "train"))
    xte, yte = images(os.path.join(ROOT, "testdata", "digits", "test"))
    models = [("pretrained", keras.models.load_model(os.path.join(ROOT, "savedmodels", "digits_vgg16", "keras",
                                                                  "model.keras")))]
    models += [(f"random (seed {s})", random_model(s)) for s in (1, 2, 3)]
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    print(f"linear probe on digits 5-9 ({len(xtr)} training images; cross-validated / test accuracy)")
    print(f"{'weights':<18}" + "".join(f"{layer:>16}" for layer in LAYERS))
    for name, model in models:
        cells = []
        for layer in LAYERS:
            features = keras.Model(model.input, model.get_layer(layer).output)
            a = features.predict(xtr, verbose=0).reshape(len(xtr), -1)
            b = features.predict(xte, verbose=0).reshape(len(xte), -1)
            probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
            cv = cross_val_score(probe, a, ytr, cv=folds).mean()
            test = probe.fit(a, ytr).score(b, yte)
            cells.append(f"{cv:.2f} / {test:.2f}")
        print(f"{name:<18}" + "".join(f"{c:>16}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
