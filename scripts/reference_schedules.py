#!/usr/bin/env python3
"""Keras's learning-rate schedules, evaluated step by step: the oracle for finetune's schedules.

Prints JSON: {"<name>": [rate at step 0, 1, ...]} for the schedules named in the plan given on
stdin: {"steps": N, "schedules": {"<name>": {"kind": "cosine_warmup" | "step_decay", ...}}}.

  cosine_warmup: initial, target, warmup_steps, decay_steps, alpha
                 -> keras.optimizers.schedules.CosineDecay(initial, decay_steps, alpha,
                    warmup_target=target, warmup_steps=warmup_steps)
  step_decay:    rate, every, factor
                 -> keras.optimizers.schedules.ExponentialDecay(rate, every, factor, staircase=True)
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402


def main():
    plan = json.load(sys.stdin)
    out = {}
    for name, s in plan["schedules"].items():
        if s["kind"] == "cosine_warmup":
            schedule = keras.optimizers.schedules.CosineDecay(
                s["initial"], s["decay_steps"], alpha=s["alpha"], warmup_target=s["target"],
                warmup_steps=s["warmup_steps"])
        elif s["kind"] == "step_decay":
            schedule = keras.optimizers.schedules.ExponentialDecay(s["rate"], s["every"], s["factor"], staircase=True)
        else:
            raise SystemExit(f"unknown schedule kind {s['kind']}")
        out[name] = [float(schedule(step)) for step in range(plan["steps"])]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
