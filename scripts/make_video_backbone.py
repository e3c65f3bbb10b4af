#!/usr/bin/env python3
"""The per-frame backbone behind finetune's video case: a small InceptionV3 pretrained on still
frames, standing in for an ImageNet-pretrained one (no weights can be downloaded here).

The topology is ``scripts/export_keras_models.py``'s ``inception_v3_small`` (keras.applications
InceptionV3, layer names kept, widths / 8, 75x75 input) with its classification top. It learns
where a shape sits: still frames drawn like ``scripts/make_clips.py``'s (disc, square or diamond,
random colour and size, noisy background), labelled with the cell of a 5x5 grid that holds the
shape's centre. Nothing in this task involves motion or time; the fine-tuning task (direction of
motion, ``make_clips.py``) is new to it. Pretraining uses its own seed and frames, never the clips.

Writes ``savedmodels/generated/video_inception_v3/keras3_export`` (Keras 3 ``model.export()``,
with ``expected.json`` and a sample, like every fixture).

Usage: scripts/make_video_backbone.py [--force] [--frames 4000] [--epochs 6]
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import keras  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_keras_models as fixtures  # noqa: E402
import make_clips  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SEED = 4321
SIZE = 75
GRID = 5


def still_frames(count, rng):
    """``count`` frames with one shape each, and the grid cell of its centre."""
    images = np.zeros((count, SIZE, SIZE, 3), np.uint8)
    labels = np.zeros(count, np.int64)
    for i in range(count):
        kind = ["disc", "square", "diamond"][rng.integers(3)]
        radius = rng.uniform(6, 10)
        colour = rng.uniform(140, 255, size=3)
        cx, cy = rng.uniform(radius + 1, SIZE - radius - 1, size=2)
        noise = np.clip(rng.uniform(10, 60) + rng.normal(0, 8, size=(SIZE, SIZE, 3)), 0, 255)
        images[i] = make_clips.draw(SIZE, cx, cy, radius, kind, colour, noise)
        labels[i] = min(int(cy * GRID / SIZE), GRID - 1) * GRID + min(int(cx * GRID / SIZE), GRID - 1)
    return images, labels


def settle(model, x):
    """Sets every BatchNormalization's moving mean and variance to the statistics of ``x``, layer
    after layer, in one training-mode pass (momentum 0); no weight changes."""
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    kept = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    model(x[:1024], training=True)
    for layer, m in zip(norms, kept):
        layer.momentum = m


def build():
    with fixtures.narrowed(keras.layers, 8):
        return keras.applications.InceptionV3(weights=None, include_top=True, input_shape=(SIZE, SIZE, 3),
                                              classes=GRID * GRID)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--force", action="store_true", help="rewrite what exists")
    p.add_argument("--frames", type=int, default=4000)
    p.add_argument("--epochs", type=int, default=6)
    a = p.parse_args(argv)
    target = os.path.join(ROOT, "savedmodels", "generated", "video_inception_v3", "keras3_export")
    if os.path.exists(os.path.join(target, "expected.json")) and not a.force:
        print(f"kept {target} (--force rewrites it)")
        return
    keras.utils.set_random_seed(SEED)
    rng = np.random.default_rng(SEED)
    images, labels = still_frames(a.frames, rng)
    x = keras.applications.inception_v3.preprocess_input(images.astype(np.float32))
    split = int(0.85 * len(x))
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:split], labels[:split], batch_size=64, epochs=a.epochs, validation_data=(x[split:], labels[split:]),
              verbose=2)
    # Six epochs leave BatchNormalization's moving statistics far from the statistics the trained
    # layers produce (held-out accuracy in inference mode lags the training accuracy). Set them
    # from one pass over training frames, as a longer run would let them converge to.
    settle(model, x[:split])
    _, accuracy = model.evaluate(x[:split], labels[:split], verbose=0)
    print(f"training frames in inference mode: accuracy {accuracy:.3f}", flush=True)
    _, accuracy = model.evaluate(x[split:], labels[split:], verbose=0)
    print(f"source task (shape position, {GRID}x{GRID} cells): held-out accuracy {accuracy:.3f}", flush=True)
    clean = build()  # the weights alone, without optimizer state
    clean.set_weights(model.get_weights())
    sample = x[split:split + 2]
    fixtures.write_fixture(target, "keras3_export", fixtures.keras3_export(clean), clean,
                           clean(sample, training=False).numpy(), sample, "video_inception_v3",
                           extra={"source_accuracy": float(accuracy),
                                  "source_task": f"shape position on still frames ({GRID}x{GRID} cells)",
                                  "pretraining_frames": a.frames, "epochs": a.epochs})


if __name__ == "__main__":
    main(sys.argv[1:])
