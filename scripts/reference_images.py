#!/usr/bin/env python3
"""What TensorFlow and Keras make of image files: the oracle for finetune's image decoding,
resizing and preprocessing.

For each file named on standard input (one path per line) writes, under ``--out``:
``<i>_decoded.npy`` (``tf.io.decode_image(channels=3, expand_animations=False)``, uint8, as
``keras.utils.image_dataset_from_directory`` decodes; for JPEG that is libjpeg's fast integer
inverse DCT), ``<i>_accurate.npy`` for JPEGs (``dct_method="INTEGER_ACCURATE"``), ``<i>_resized.npy`` (``tf.image.resize``
to ``--size``, bilinear, float32) and ``<i>_<mode>.npy`` for each preprocessing mode (``caffe``:
``keras.applications.vgg16.preprocess_input``; ``tf``: ``inception_v3``; ``torch``:
``densenet``), or ``<i>_error.txt`` when TensorFlow cannot decode the file. Grey, as
``color_mode="grayscale"`` decodes (``channels=1``): ``<i>_grey.npy``, for JPEGs also
``<i>_grey_accurate.npy``, or ``<i>_grey_error.txt`` when TensorFlow decodes the file in colour only.

Usage: scripts/reference_images.py --size H W --out DIR < files.txt
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

MODES = {
    "caffe": keras.applications.vgg16.preprocess_input,
    "tf": keras.applications.inception_v3.preprocess_input,
    "torch": keras.applications.densenet.preprocess_input,
}


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, nargs=2, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    for i, line in enumerate(sys.stdin.read().splitlines()):
        path = line.strip()
        try:
            decoded = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        except (tf.errors.InvalidArgumentError, tf.errors.OpError) as e:
            with open(os.path.join(args.out, f"{i}_error.txt"), "w") as f:
                f.write(str(e).splitlines()[0] if str(e) else type(e).__name__)
            continue
        np.save(os.path.join(args.out, f"{i}_decoded.npy"), decoded.numpy())
        contents = tf.io.read_file(path)
        try:
            grey = tf.io.decode_image(contents, channels=1, expand_animations=False)
            np.save(os.path.join(args.out, f"{i}_grey.npy"), grey.numpy())
            if tf.io.is_jpeg(contents):
                grey = tf.io.decode_jpeg(contents, channels=1, dct_method="INTEGER_ACCURATE")
                np.save(os.path.join(args.out, f"{i}_grey_accurate.npy"), grey.numpy())
        except (tf.errors.InvalidArgumentError, tf.errors.OpError) as e:
            with open(os.path.join(args.out, f"{i}_grey_error.txt"), "w") as f:
                f.write(str(e).splitlines()[0] if str(e) else type(e).__name__)
        if tf.io.is_jpeg(contents):
            accurate = tf.io.decode_jpeg(contents, channels=3, dct_method="INTEGER_ACCURATE")
            np.save(os.path.join(args.out, f"{i}_accurate.npy"), accurate.numpy())
        resized = tf.image.resize(decoded, args.size, method="bilinear", antialias=False)
        np.save(os.path.join(args.out, f"{i}_resized.npy"), resized.numpy())
        for mode, fn in MODES.items():
            np.save(os.path.join(args.out, f"{i}_{mode}.npy"), np.asarray(fn(tf.identity(resized))))


if __name__ == "__main__":
    main(sys.argv[1:])
