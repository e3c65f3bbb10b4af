#!/usr/bin/env python3
"""Synthetic video clips whose class is the direction of motion: finetune's video fixture.

Each clip is a folder of PNG frames (``<out>/<split>/<class>/<clip>/frame_NN.png``) showing one
shape (disc, square or diamond; random colour and size) on a noisy background. The classes:

- ``left``, ``right``, ``up``, ``down``: the shape moves that way by a random speed per frame;
- ``static``: it stays put.

Motion is symmetric about the clip's middle frame: a ``left`` clip is a ``right`` clip with the
same centre, speed and shape played backwards, and the draw of those parameters does not depend
on the direction. So the set of frames of a clip says nothing about left versus right (or up
versus down): only their order does, and a model that averages over frames is at chance there.

Usage: scripts/make_clips.py --out DIR [--train 24] [--test 16] [--frames 8] [--size 75] [--seed 7]
"""
import argparse
import json
import os
import shutil
import struct
import sys
import zlib

import numpy as np

CLASSES = ["down", "left", "right", "static", "up"]
# (dx, dy) per frame for a unit speed; image y grows downwards.
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1), "static": (0, 0)}


def png_bytes(rgb):
    """An 8-bit RGB PNG of ``rgb`` (uint8, [h, w, 3]): filter type 0 on every row."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def draw(size, cx, cy, radius, kind, colour, noise):
    """One frame: background noise plus the shape centred at (cx, cy), anti-aliased by 4x4 supersampling."""
    frame = noise.copy()
    sub = 4
    offsets = (np.arange(sub) + 0.5) / sub
    ys = (np.arange(size)[:, None] + offsets[None, :]).reshape(-1)
    xs = ys.copy()
    dx = xs[None, :] - cx
    dy = ys[:, None] - cy
    if kind == "disc":
        inside = dx * dx + dy * dy <= radius * radius
    elif kind == "square":
        inside = (np.abs(dx) <= radius * 0.85) & (np.abs(dy) <= radius * 0.85)
    else:  # diamond
        inside = np.abs(dx) + np.abs(dy) <= radius * 1.2
    cover = inside.reshape(size, sub, size, sub).mean(axis=(1, 3))[..., None]
    return np.clip(np.round(frame * (1 - cover) + colour[None, None, :] * cover), 0, 255).astype(np.uint8)


def clip(rng, label, frames, size):
    """The frames of one clip of class ``label``."""
    kind = ["disc", "square", "diamond"][rng.integers(3)]
    radius = rng.uniform(6, 10)
    colour = rng.uniform(140, 255, size=3)
    speed = rng.uniform(3.0, 5.0)
    travel = speed * (frames - 1) / 2
    margin = radius + 1
    # The centre is drawn the same way for every class, so frame sets do not give the direction away.
    cx = rng.uniform(margin + travel, size - margin - travel)
    cy = rng.uniform(margin + travel, size - margin - travel)
    background = rng.uniform(10, 60)
    ux, uy = DIRECTIONS[label]
    out = []
    for t in range(frames):
        s = (t - (frames - 1) / 2) * speed
        noise = np.clip(background + rng.normal(0, 8, size=(size, size, 3)), 0, 255)
        out.append(draw(size, cx + ux * s, cy + uy * s, radius, kind, colour, noise))
    return out


def write_split(root, split, per_class, frames, size, rng):
    count = 0
    for label in CLASSES:
        for i in range(per_class):
            folder = os.path.join(root, split, label, f"{label}_{i:03d}")
            os.makedirs(folder, exist_ok=True)
            for t, frame in enumerate(clip(rng, label, frames, size)):
                with open(os.path.join(folder, f"frame_{t:02d}.png"), "wb") as f:
                    f.write(png_bytes(frame))
            count += 1
    return count


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder to write train/ and test/ into (replaced)")
    p.add_argument("--train", type=int, default=24, help="training clips per class")
    p.add_argument("--test", type=int, default=16, help="held-out clips per class")
    p.add_argument("--frames", type=int, default=8, help="frames per clip")
    p.add_argument("--size", type=int, default=75, help="frame height and width (InceptionV3 needs 75 or more)")
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args(argv)
    if a.frames < 2 or a.size < 32 or a.train < 1 or a.test < 1:
        p.error("need --frames >= 2, --size >= 32 and at least one clip per class in each split")
    if os.path.exists(a.out):
        shutil.rmtree(a.out)
    rng = np.random.default_rng(a.seed)
    n_train = write_split(a.out, "train", a.train, a.frames, a.size, rng)
    n_test = write_split(a.out, "test", a.test, a.frames, a.size, rng)
    meta = {"classes": CLASSES, "frames": a.frames, "size": a.size, "seed": a.seed,
            "train_clips": n_train, "test_clips": n_test}
    with open(os.path.join(a.out, "clips.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"wrote {n_train} training and {n_test} held-out clips of {a.frames} frames ({a.size}x{a.size}) to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
