#!/usr/bin/env python3
"""Linear probes on the Fashion-MNIST source model's features, for the transfer demo's reading.

For each layer, a logistic regression (scikit-learn, fit to convergence) on the layer's output
for a seed's training draw of target A (testdata/fashion/train/seed<k>: 20 images per class of
classes 5-9) is scored on the bundled held-out images (testdata/fashion/test). Images go through
what finetune does: decoded as RGB, resized bilinearly to 32x32, caffe preprocessing.

Usage: scripts/probe_fashion.py [--seed 1] [--layers block3_pool,block4_pool,block5_pool,fc1,fc2]
"""
import argparse
import glob
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def load(root):
    xs, ys = [], []
    for i, c in enumerate(sorted(os.listdir(root))):
        for f in sorted(glob.glob(os.path.join(root, c, "*.png"))):
            img = tf.cast(tf.io.decode_png(tf.io.read_file(f), channels=3), tf.float32)
            xs.append(tf.image.resize(img, (32, 32), method="bilinear").numpy())
            ys.append(i)
    return keras.applications.vgg16.preprocess_input(np.stack(xs)), np.array(ys)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--layers", default="block3_pool,block4_pool,block5_pool,fc1,fc2")
    args = parser.parse_args(argv)
    model = keras.saving.load_model(os.path.join(ROOT, "savedmodels/fashion_vgg16/keras/model.keras"), compile=False)
    train_x, train_y = load(os.path.join(ROOT, f"testdata/fashion/train/seed{args.seed}"))
    test_x, test_y = load(os.path.join(ROOT, "testdata/fashion/test"))
    print(f"layer        features  probe accuracy on {len(test_y)} held-out images ({len(train_y)} training)")
    for name in args.layers.split(","):
        features = keras.Model(model.input, model.get_layer(name).output)
        a = features.predict(train_x, verbose=0).reshape(len(train_x), -1)
        b = features.predict(test_x, verbose=0).reshape(len(test_x), -1)
        probe = LogisticRegression(max_iter=5000).fit(a, train_y)
        print(f"{name:12s} {a.shape[1]:8d}  {probe.score(b, test_y):.3f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
