#!/usr/bin/env python3
"""Reads TensorBoard event files with TensorBoard's own reader and prints their scalars as JSON:
``{"<run>": {"<tag>": [[step, value], ...]}}`` for every run (sub-folder with event files) under
the given directory. finetune's tests use it to prove its event files are real.

Usage: scripts/read_tensorboard.py LOGDIR
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tensorboard.backend.event_processing import event_accumulator  # noqa: E402
from tensorboard.util import tensor_util  # noqa: E402


def main(logdir):
    out = {}
    for run in sorted(os.listdir(logdir)):
        path = os.path.join(logdir, run)
        if not os.path.isdir(path):
            continue
        acc = event_accumulator.EventAccumulator(path, size_guidance={event_accumulator.TENSORS: 0,
                                                                       event_accumulator.SCALARS: 0})
        acc.Reload()
        tags = acc.Tags()
        scalars = {}
        for tag in tags.get("tensors", []):
            scalars[tag] = [[e.step, float(tensor_util.make_ndarray(e.tensor_proto))] for e in acc.Tensors(tag)]
        for tag in tags.get("scalars", []):
            scalars[tag] = [[e.step, float(e.value)] for e in acc.Scalars(tag)]
        out[run] = scalars
    print(json.dumps(out))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
