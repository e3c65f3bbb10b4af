#!/usr/bin/env python3
"""The Keras half of scripts/bench: one workload, one way of running it, per process.

    bench_keras.py WORKLOAD MODE OUT.json [--quick]

WORKLOAD is one of vgg16_head, vgg16_block5, inception_mixed9, gpt2_base, gpt2_small,
vgg16_head_e2e (the same names as org.finetune.bench.CompareBenchmark). MODE is ``fit``
(``model.fit`` with Keras's default ``jit_compile``, i.e. "auto", which Keras resolves itself) or
``function`` (a plain ``@tf.function`` train step: forward under a GradientTape, Keras's loss,
Keras's Adam applied to the trainable variables). The models come from the same fixtures' Keras
files (savedmodels/generated/*/keras/model.keras) that the Java side's SavedModels were exported
from; the same layers are frozen and the same head is added (GlobalAveragePooling2D and
Dense(classes, softmax)), Adam 1e-3, the same batch and shapes, the base called in inference mode
as the Java side runs the serving graph. Inputs are seeded random values; the same batch every step.
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GENERATED = os.path.join(ROOT, "savedmodels", "generated")
CLASSES = 10
QUICK = "--quick" in sys.argv

# name: (fixture, input side, trained part, batch, warm-up steps, timed steps); as in CompareBenchmark
IMAGE_WORKLOADS = {
    "vgg16_head": ("vgg16", 64, "head", 32, 3, 10),
    "vgg16_block5": ("vgg16", 64, "block5", 32, 3, 10),
    "inception_mixed9": ("inception_v3", 75, "mixed9", 32, 3, 10),
}
TEXT_WORKLOADS = {
    "gpt2_base": ("gpt2_base", 4, 128, 1, 3),
    "gpt2_small": ("gpt2_small", 4, 128, 2, 10),
}


def keras_file(fixture):
    return os.path.join(GENERATED, fixture, "keras", "model.keras")


def image_model(fixture, trained, classes):
    """The base with the layers Java's selector trains left trainable, and the new head."""
    base = keras.saving.load_model(keras_file(fixture), compile=False)
    if trained == "head":
        base.trainable = False
    else:
        names = [layer.name for layer in base.layers]
        if trained == "block5":
            train = {n for n in names if n.startswith("block5_")}
        else:  # InceptionV3 "mixed9": every layer above the mixed9 concatenation (the mixed10 block)
            train = set(names[names.index(trained) + 1:])
        for layer in base.layers:
            layer.trainable = layer.name in train
    inputs = keras.Input(base.input.shape[1:])
    features = base(inputs, training=False)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    outputs = keras.layers.Dense(classes, activation="softmax")(pooled)
    return keras.Model(inputs, outputs)


def text_model(fixture):
    import keras_hub  # noqa: F401  (registers GPT-2's classes for loading)

    model = keras.saving.load_model(keras_file(fixture), compile=False)
    # Java trains through the serving graph, where dropout is off; so is it here, also under fit.
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    return model


def now():
    return time.time()


class StepTimes(keras.callbacks.Callback):
    def __init__(self, result):
        super().__init__()
        self.result = result
        self.ends = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())
        if len(self.ends) == 1:
            self.result["first_step_wall_s"] = now()


def run_steps(result, model, loss, x, y, w, warmup, timed, items, unit, t0):
    optimizer = keras.optimizers.Adam(learning_rate=1e-3)
    if result["mode"] == "fit":
        model.compile(optimizer=optimizer, loss=loss)
        result["jit_compile"] = bool(model.jit_compile)
        ds = tf.data.Dataset.from_tensors((x, y) if w is None else (x, y, w)).repeat()
        cb = StepTimes(result)
        start = time.perf_counter()
        model.fit(ds, epochs=1, steps_per_epoch=warmup + timed, verbose=0, callbacks=[cb])
        ends = [start] + cb.ends
        result["open_to_first_step_s"] = cb.ends[0] - t0
        steps = [b - a for a, b in zip(ends[:-1], ends[1:])]
        warm, timed_steps = steps[:warmup], steps[warmup:]
        total = ends[-1] - ends[warmup]
        result["how"] = "model.fit, jit_compile=%s (Keras default 'auto'), steps_per_execution=1" % result["jit_compile"]
    else:
        optimizer.build(model.trainable_variables)
        loss_fn = loss

        @tf.function
        def step(x, y, w):
            with tf.GradientTape() as tape:
                out = model(x, training=False)
                value = loss_fn(y, out, sample_weight=w)
            grads = tape.gradient(value, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return value

        steps = []
        for i in range(warmup + timed):
            s = time.perf_counter()
            step(x, y, w).numpy()
            steps.append(time.perf_counter() - s)
            if i == 0:
                result["first_step_wall_s"] = now()
                result["open_to_first_step_s"] = time.perf_counter() - t0
        warm, timed_steps = steps[:warmup], steps[warmup:]
        total = sum(timed_steps)
        result["jit_compile"] = False
        result["how"] = "plain @tf.function step (GradientTape, Keras loss, Keras Adam), not XLA-compiled"
    result["warmup_steps"] = warmup
    result["warmup_step_s"] = warm
    result["step_s"] = timed_steps
    result["timed_steps"] = timed
    result["step_median_s"] = float(np.median(timed_steps))
    result[unit] = items * timed / total
    result["throughput"] = items * timed / total
    result["throughput_unit"] = unit


def image_steps(result, name):
    fixture, size, trained, batch, warmup, timed = IMAGE_WORKLOADS[name]
    if QUICK:
        warmup, timed = 1, 2
    t0 = time.perf_counter()
    model = image_model(fixture, trained, CLASSES)
    rng = np.random.default_rng(1)
    x = tf.constant(rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32"))
    y = tf.constant(rng.integers(0, CLASSES, batch).astype("int32"))
    run_steps(result, model, keras.losses.SparseCategoricalCrossentropy(), x, y, None, warmup, timed, batch,
              "images_per_s", t0)
    result.update(batch=batch, size=size)


def text_steps(result, name):
    fixture, batch, length, warmup, timed = TEXT_WORKLOADS[name]
    if QUICK:
        warmup, timed = 1, (1 if name == "gpt2_base" else 2)
    t0 = time.perf_counter()
    model = text_model(fixture)
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 50257, (batch, length)).astype("int32")
    x = {"token_ids": tf.constant(ids), "padding_mask": tf.constant(np.ones_like(ids))}
    # Next-token targets, the last position (which has none) weighted 0: Java's causal-LM loss.
    y = tf.constant(np.concatenate([ids[:, 1:], np.zeros((batch, 1), "int32")], axis=1))
    w = np.ones((batch, length), "float32")
    w[:, -1] = 0
    run_steps(result, model, keras.losses.SparseCategoricalCrossentropy(from_logits=True), x, y,
              tf.constant(w), warmup, timed, batch * length, "tokens_per_s", t0)
    result.update(batch=batch, sequence=length)


def end_to_end(result):
    """Head-only, 10 epochs on the 2,000 images, the usual Keras way: decode the files into
    memory once, preprocess as keras.applications.vgg16 does, model.fit over them (the frozen
    base runs forward on every batch of every epoch)."""
    epochs = 1 if QUICK else 10
    t0 = time.perf_counter()
    folder = os.path.join(ROOT, "target", "bench", "images64")
    classes = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    files = [(os.path.join(folder, c, f), i) for i, c in enumerate(classes)
             for f in sorted(os.listdir(os.path.join(folder, c)))]
    if QUICK:
        files = files[:256]
    images = np.stack([tf.io.decode_image(tf.io.read_file(f), channels=3, expand_animations=False).numpy()
                       for f, _ in files]).astype("float32")
    x = keras.applications.vgg16.preprocess_input(images)
    y = np.array([label for _, label in files], "int32")
    model = image_model("vgg16", "head", len(classes))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss="sparse_categorical_crossentropy")
    result["jit_compile"] = bool(model.jit_compile)
    model.fit(x, y, batch_size=32, epochs=epochs, shuffle=True, verbose=0)
    total = time.perf_counter() - t0
    result.update(images=len(files), epochs=epochs, end_to_end_s=total, throughput=total, throughput_unit="s")
    result["how"] = ("end-to-end row: images decoded into memory once (tf.io.decode_image), then model.fit, jit_compile=%s;"
                     " timed from loading the model file" % result["jit_compile"])


def vm_hwm_kib():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def configure_runtime(device, mixed):
    """The Java side's --device and --mixed-precision: the same placement and the same Grappler
    rewrite (automatic mixed precision: float16 on a GPU, oneDNN bfloat16 on a CPU)."""
    if device == "cpu":
        tf.config.set_visible_devices([], "GPU")
    elif device.startswith("gpu"):
        gpus = tf.config.list_physical_devices("GPU")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= len(gpus):
            raise SystemExit("bench_keras: --device %s, but TensorFlow sees %d GPU(s)" % (device, len(gpus)))
        tf.config.set_visible_devices([gpus[index]], "GPU")
    on_gpu = bool(tf.config.get_visible_devices("GPU"))
    if mixed:
        tf.config.optimizer.set_experimental_options(
            {"auto_mixed_precision": True} if on_gpu else {"auto_mixed_precision_onednn_bfloat16": True})
    return ("GPU" if on_gpu else "CPU") + (", mixed precision" if mixed else "")


def main(argv):
    rest = [a for a in argv[1:] if a != "--quick"]
    device, mixed, args = "auto", False, []
    i = 0
    while i < len(rest):
        if rest[i] == "--device" and i + 1 < len(rest):
            device = rest[i + 1]
            i += 2
            continue
        if rest[i] == "--mixed-precision":
            mixed = True
        else:
            args.append(rest[i])
        i += 1
    if len(args) != 3 or args[1] not in ("fit", "function"):
        print("usage: bench_keras.py WORKLOAD fit|function OUT.json [--quick] [--device auto|cpu|gpu|gpu:N]"
              " [--mixed-precision]", file=sys.stderr)
        return 2
    name, mode, out = args
    keras.utils.set_random_seed(1)
    result = {"workload": name, "side": "keras", "mode": mode, "quick": QUICK}
    result["runtime"] = configure_runtime(device, mixed)
    if name in IMAGE_WORKLOADS:
        image_steps(result, name)
    elif name in TEXT_WORKLOADS:
        text_steps(result, name)
    elif name == "vgg16_head_e2e":
        end_to_end(result)
    else:
        print("unknown workload %s; use %s" % (name, ", ".join([*IMAGE_WORKLOADS, *TEXT_WORKLOADS, "vgg16_head_e2e"])),
              file=sys.stderr)
        return 2
    result["vm_hwm_kib"] = vm_hwm_kib()
    result["versions"] = {"tensorflow": tf.__version__, "keras": keras.__version__}
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
