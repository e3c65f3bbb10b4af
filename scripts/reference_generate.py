#!/usr/bin/env python3
"""Greedy generation by keras-hub, the oracle for finetune's TextGenerator.

Loads a GPT2CausalLM saved by Keras (``model.keras``), and for each prompt (token ids) asks
``GPT2CausalLM.generate`` with keras-hub's greedy sampler for ``--max-new`` tokens, without stop
tokens. Prompts come as JSON on stdin (a list of lists of ids); the new tokens go to stdout as
JSON (a list of lists of ids).

Usage: scripts/reference_generate.py --model DIR/keras/model.keras --max-new 16 < prompts.json
"""
import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import keras  # noqa: E402
import keras_hub  # noqa: E402, F401  (registers the GPT-2 classes for loading)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--max-new", type=int, required=True)
    args = parser.parse_args(argv)
    prompts = json.load(sys.stdin)
    model = keras.models.load_model(args.model)
    model.compile(sampler="greedy")
    out = []
    for prompt in prompts:
        width = len(prompt) + args.max_new
        ids = np.zeros((1, width), np.int32)
        mask = np.zeros((1, width), np.int32)
        ids[0, :len(prompt)] = prompt
        mask[0, :len(prompt)] = 1
        result = model.generate({"token_ids": ids, "padding_mask": mask}, stop_token_ids=None)
        out.append([int(t) for t in np.asarray(result["token_ids"])[0, len(prompt):width]])
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
