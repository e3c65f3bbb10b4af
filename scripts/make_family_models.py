#!/usr/bin/env python3
"""Writes one keras.applications model of every architecture family, for finetune's family tests.

Each model is the family's smallest variant, built by Keras with random seeded weights
(``weights=None``: no pretrained weights can be downloaded) at a small input size, with Keras's own
classifier top for 3 classes (``include_top=True, classes=3``), as a Keras user would build and save
one. BatchNormalization statistics are set from data (one training-mode call on 8 seeded images, preprocessed as
the family's ``preprocess_input`` does, with momentum 0) and the classifier's kernel scaled down (by 10 until no probability on 4 images exceeds
0.99), so that activations and predictions are not degenerate.

  <out>/<family>/keras3_export/   Keras 3 ``model.export()`` (tf_keras ``model.save`` for RegNet,
                                  which only tf_keras has): the SavedModel finetune loads
  <out>/<family>/keras.json       what Keras says about it:
      family          the family's name as finetune should report it
      feature_layer   the layer whose output ``include_top=False`` would return (the input of the
                      top's pooling), or for ConvNeXt, whose top normalises after pooling, its
                      ``head_layernorm``
      feature_shape   that layer's output shape (batch dimension None)
      params, trainable_params, weight_layers   Keras's totals
      preprocess_in, preprocess_out   8 pixel values (0..255, RGB) and what the family module's
                      ``preprocess_input`` makes of them

Usage: make_family_models.py [--out savedmodels/generated/families] [--families a,b]
A family already written is kept; each is written into a temporary sibling and renamed into place.
"""
import argparse
import json
import os
import shutil
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

warnings.filterwarnings("ignore", message="The structure of `inputs`")

A = keras.applications
# family -> (constructor, module with preprocess_input, input side, extra constructor arguments)
FAMILIES = {
    "VGG19": (lambda: A.VGG19, lambda: A.vgg19, 32, {}),
    "ResNet50": (lambda: A.ResNet50, lambda: A.resnet50, 32, {}),
    "ResNet50V2": (lambda: A.ResNet50V2, lambda: A.resnet_v2, 32, {}),
    "InceptionResNetV2": (lambda: A.InceptionResNetV2, lambda: A.inception_resnet_v2, 75, {}),
    "Xception": (lambda: A.Xception, lambda: A.xception, 71, {}),
    "MobileNet": (lambda: A.MobileNet, lambda: A.mobilenet, 32, {"alpha": 0.25}),
    "MobileNetV2": (lambda: A.MobileNetV2, lambda: A.mobilenet_v2, 32, {"alpha": 0.35}),
    "MobileNetV3Small": (lambda: A.MobileNetV3Small, lambda: A.mobilenet_v3, 32, {"alpha": 0.75}),
    "EfficientNetV2B0": (lambda: A.EfficientNetV2B0, lambda: A.efficientnet_v2, 32, {}),
    "DenseNet121": (lambda: A.DenseNet121, lambda: A.densenet, 32, {}),
    "NASNetMobile": (lambda: A.NASNetMobile, lambda: A.nasnet, 32, {}),
    "ConvNeXtTiny": (lambda: A.ConvNeXtTiny, lambda: A.convnext, 32, {}),
    "RegNetX002": (None, None, 32, {}),
}
# The family names finetune reports (several Keras constructors share one family's conventions).
REPORTED = {"VGG19": "VGG19", "ResNet50": "ResNet", "ResNet50V2": "ResNetV2", "InceptionResNetV2": "InceptionResNetV2",
            "Xception": "Xception", "MobileNet": "MobileNet", "MobileNetV2": "MobileNetV2",
            "MobileNetV3Small": "MobileNetV3", "EfficientNetV2B0": "EfficientNetV2", "DenseNet121": "DenseNet",
            "NASNetMobile": "NASNet", "ConvNeXtTiny": "ConvNeXt", "RegNetX002": "RegNet"}


def settle_batch_norm(model, layers_module, images, call):
    """Moving statistics from one training-mode call with momentum 0: the batch's own statistics."""
    saved = []
    for layer in model.layers:
        if isinstance(layer, layers_module.BatchNormalization):
            saved.append((layer, layer.momentum))
            layer.momentum = 0.0
    call(images)
    for layer, momentum in saved:
        layer.momentum = momentum


def feature_layer(model, family, layers_module):
    if family == "ConvNeXtTiny":
        return next(l for l in model.layers if l.name.endswith("_head_layernorm"))
    # The top's pooling: the last global average pooling (squeeze-and-excitation blocks pool too),
    # or VGG's Flatten.
    pools = [l for l in model.layers if isinstance(l, layers_module.GlobalAveragePooling2D)]
    top = pools[-1] if pools else next(l for l in model.layers if isinstance(l, layers_module.Flatten))
    return top.input._keras_history[0] if hasattr(top.input, "_keras_history") else top.inbound_nodes[0].inbound_layers


def build(family, out):
    rng = np.random.default_rng(11)
    keras.utils.set_random_seed(11)
    ctor, module, side, extra = FAMILIES[family]
    sample = np.array([[[0, 64, 255], [12, 200, 33]], [[128, 128, 128], [250, 5, 90]]], np.float32)[None]
    images = (255 * rng.random((8, side, side, 3))).astype(np.float32)
    if family == "RegNetX002":
        import tf_keras
        model = tf_keras.applications.RegNetX002(weights=None, input_shape=(side, side, 3), classes=3)
        pre = tf_keras.applications.regnet.preprocess_input(sample.copy())
        images = tf_keras.applications.regnet.preprocess_input(images)
        settle_batch_norm(model, tf_keras.layers, images, lambda x: model(x, training=True))
        feature = feature_layer(model, family, tf_keras.layers)
        layers_module = tf_keras.layers
    else:
        model = ctor()(weights=None, input_tensor=keras.Input((side, side, 3), name="image"), classes=3, **extra)
        pre = module().preprocess_input(sample.copy())
        images = module().preprocess_input(images)
        settle_batch_norm(model, keras.layers, images, lambda x: model(x, training=True))
        feature = feature_layer(model, family, keras.layers)
        layers_module = keras.layers
    del layers_module
    # Random features are large: scale the classifier's kernel down until its softmax is not saturated.
    top = [l for l in model.layers if getattr(l, "kernel", None) is not None][-1]
    for _ in range(8):
        probs = np.asarray(model(images[:4], training=False))
        if probs.max() < 0.99:
            break
        top.kernel.assign(np.asarray(top.kernel) * 0.1)
    if family == "RegNetX002":
        model.save(os.path.join(out, "keras3_export"), save_format="tf")
    else:
        model.export(os.path.join(out, "keras3_export"), verbose=False)
    weight_layers = [l for l in model.layers if l.weights]
    probs = np.asarray(model(images[:4], training=False))
    if not np.all(np.isfinite(probs)) or np.allclose(probs, probs[0], atol=1e-6):
        raise SystemExit(f"{family}: degenerate outputs {probs}")
    meta = {
        "family": REPORTED[family],
        "constructor": family,
        "feature_layer": feature.name,
        "feature_shape": [None] + [int(d) for d in feature.output.shape[1:]],
        "params": int(model.count_params()),
        "trainable_params": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        "weight_layers": len(weight_layers),
        "preprocess_in": sample.reshape(-1).tolist(),
        "preprocess_out": np.asarray(pre, np.float64).reshape(-1).tolist(),
        "input_side": side,
    }
    with open(os.path.join(out, "keras.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return meta


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "savedmodels", "generated", "families"))
    p.add_argument("--families", default=",".join(FAMILIES))
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for family in args.families.split(","):
        if family not in FAMILIES:
            raise SystemExit(f"unknown family {family}; known: {', '.join(FAMILIES)}")
        final = os.path.join(args.out, family)
        if os.path.exists(os.path.join(final, "keras.json")):
            print(f"kept {final}")
            continue
        tmp = final + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        meta = build(family, tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
        print(f"wrote {final} ({meta['params']:,} params, features {meta['feature_layer']} {meta['feature_shape']})",
              flush=True)


if __name__ == "__main__":
    sys.exit(main())
