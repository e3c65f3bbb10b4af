"""Writes the bad-input corpus under testdata/bad/: one folder per case, each with the damaged
input files and a case.json that says how to run the command line on it and what must happen.

Run with the project's venv:  .venv/bin/python scripts/make_bad_inputs.py
Deterministic (seeded; every file is written from fixed bytes), so running it again reproduces
the committed corpus byte for byte. BadInputCorpusTest runs every case.

case.json:
  kind       the issue's category (a model file, an image, text, a data folder, a plan, ...)
  args       the command line; {case} is this folder, {out} a fresh temporary path that must not
             exist afterwards, {fixture:ID} the model of a Keras-written fixture (savedmodels/ID/model)
  exit       2 (bad input: one line naming the file and the fix) or 0 (skipped with one warning,
             or decoded: the case is a file people think is bad but that we read as TensorFlow does)
  stderr     substrings of the single stderr line (the file at fault and the fix), or [] for none
  stdout     (optional) substrings stdout must hold (what is still done when a file is skipped);
             with exit 2, stdout must be empty
  decodes    (optional) a file the library must decode: width, height, and the sum and SHA-256 of
             its RGB samples (row-major, uint8) as tf.io.decode_jpeg/decode_image give them (the oracle)

Model cases hold a damaged copy of savedmodels/tf1_linear/tf1/model (10 KB), never of a large model.
"""

import argparse
import hashlib
import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "testdata" / "bad"
TF1 = ROOT / "savedmodels" / "tf1_linear" / "tf1" / "model"
IMAGE_MODEL = "{fixture:vgg16_small/keras3_export}"
TEXT_MODEL = "{fixture:generated/gpt2_small/keras3_export}"


# ---------------------------------------------------------------- writers

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width, height, rows, bit_depth=8, colour_type=2):
    """A PNG from raw filtered-0 scanlines (bytes per row already packed)."""
    raw = b"".join(b"\x00" + r for r in rows)
    return (b"\x89PNG\r\n\x1a\n"
            + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0))
            + png_chunk(b"IDAT", zlib.compress(raw, 9))
            + png_chunk(b"IEND", b""))


def rgb_png(pixels):
    """pixels: uint8 array [h, w, 3]."""
    h, w, _ = pixels.shape
    return png(w, h, [pixels[y].tobytes() for y in range(h)])


def noise(rng, h, w):
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def jpeg_rgb(pixels):
    import tensorflow as tf
    return tf.io.encode_jpeg(pixels, quality=90).numpy()


def huffman_codes(bits, values):
    """Canonical Huffman codes (JPEG Annex C) as {symbol: (code, length)}."""
    codes, code, k = {}, 0, 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            codes[values[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return codes


def cmyk_jpeg(blocks_cmyk, width, height, adobe_transform=0):
    """A baseline JPEG with four components: with an APP14 "Adobe" marker (transform 0: inverted
    CMYK as Photoshop writes it; 2: YCCK) or, with adobe_transform None, plain CMYK without one.
    Every 8x8 block is flat (DC only), quantisation 1. blocks_cmyk: [height/8, width/8, 4] stored
    sample values."""
    dc_bits = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]  # Annex K luminance DC
    dc_values = list(range(12))
    ac_bits = [1] + [0] * 15  # one code: end of block
    ac_values = [0x00]
    dc = huffman_codes(dc_bits, dc_values)
    eob = huffman_codes(ac_bits, ac_values)[0]

    def segment(marker, payload):
        return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload

    out = bytearray(b"\xff\xd8")
    if adobe_transform is not None:
        out += segment(0xEE, b"Adobe" + struct.pack(">HHHB", 100, 0, 0, adobe_transform))
    out += segment(0xDB, b"\x00" + bytes([1] * 64))
    out += segment(0xC0, struct.pack(">BHHB", 8, height, width, 4) + b"".join(bytes([c, 0x11, 0]) for c in range(1, 5)))
    out += segment(0xC4, b"\x00" + bytes(dc_bits) + bytes(dc_values))
    out += segment(0xC4, b"\x10" + bytes(ac_bits) + bytes(ac_values))
    out += segment(0xDA, bytes([4]) + b"".join(bytes([c, 0x00]) for c in range(1, 5)) + b"\x00\x3f\x00")
    bitbuf, nbits, data = 0, 0, bytearray()

    def put(code, length):
        nonlocal bitbuf, nbits
        bitbuf = (bitbuf << length) | code
        nbits += length
        while nbits >= 8:
            byte = (bitbuf >> (nbits - 8)) & 0xFF
            data.append(byte)
            if byte == 0xFF:
                data.append(0x00)
            nbits -= 8

    previous = [0, 0, 0, 0]
    for by in range(height // 8):
        for bx in range(width // 8):
            for c in range(4):
                coefficient = 8 * (int(blocks_cmyk[by, bx, c]) - 128)  # the DC of a flat block
                diff = coefficient - previous[c]
                previous[c] = coefficient
                size = abs(diff).bit_length()
                put(*dc[size])
                if size:
                    put(diff if diff > 0 else diff + (1 << size) - 1, size)
                put(*eob)
    if nbits:
        put((1 << (8 - nbits)) - 1, 8 - nbits)  # pad with ones
    out += data + b"\xff\xd9"
    return bytes(out)


def npy(array):
    import io
    b = io.BytesIO()
    np.save(b, array, allow_pickle=False)
    return b.getvalue()


# ---------------------------------------------------------------- the corpus

class Corpus:
    def __init__(self, root):
        self.root = root
        self.names = []

    def case(self, name, kind, args, exit_code, stderr, files=None, model=None, decodes=None, stdout=None):
        d = self.root / name
        d.mkdir(parents=True)
        if model is not None:
            shutil.copytree(TF1, d / "model")
            model(d / "model")
        for rel, content in (files or {}).items():
            p = d / rel
            if content is None:  # a folder
                p.mkdir(parents=True, exist_ok=True)
                continue
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        manifest = {"kind": kind, "args": args, "exit": exit_code, "stderr": stderr}
        if stdout is not None:
            manifest["stdout"] = stdout
        if decodes is not None:
            manifest["decodes"] = decodes
        (d / "case.json").write_text(json.dumps(manifest, indent=2) + "\n")
        self.names.append(name)


def flip_bit(path, offset, bit=0):
    b = bytearray(path.read_bytes())
    b[offset] ^= 1 << bit
    path.write_bytes(bytes(b))


def reference(data, kind):
    """width, height, the sum and the SHA-256 of the uint8 RGB samples TensorFlow decodes (the oracle)."""
    import tensorflow as tf
    if kind == "jpeg":
        img = tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE").numpy()
    else:
        img = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
    assert img.dtype == np.uint8, img.dtype
    return {"width": int(img.shape[1]), "height": int(img.shape[0]), "sum": int(img.astype(np.int64).sum()),
            "sha256": hashlib.sha256(np.ascontiguousarray(img).tobytes()).hexdigest()}


def build(corpus):
    rng = np.random.default_rng(9)
    good_png = rgb_png(noise(rng, 32, 32))
    good_jpg = jpeg_rgb(noise(rng, 32, 32))
    features = npy(np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4))

    def predict_images(name, kind, bad_name, bad_bytes, stderr, exit_code=0, decodes=None):
        """predict --images on a folder with one good image and the case's file: the good one (and
        the case's file when it decodes) is predicted, whatever happens to the other."""
        predicted = ["{case}/images/good.png,1,"] + (["{case}/images/%s,1," % bad_name] if decodes else [])
        corpus.case(name, kind, ["predict", IMAGE_MODEL, "--images", "{case}/images", "--format", "csv"], exit_code,
                    stderr, files={"images/good.png": good_png, "images/" + bad_name: bad_bytes}, decodes=decodes,
                    stdout=predicted)

    def train_data(classes, per_class=1):
        files = {}
        for c in classes:
            for i in range(per_class):
                files["data/%s/%s_%d.png" % (c, c, i)] = rgb_png(noise(rng, 8, 8))
        return files

    train_images = ["train", IMAGE_MODEL, "--data", "{case}/data", "--head", "--epochs", "1", "--out", "{out}"]

    # --- saved_model.pb
    pb = "{case}/model/saved_model.pb"
    corpus.case("savedmodel-pb-truncated", "saved_model.pb truncated", ["inspect", "{case}/model"], 2,
                [pb, "damaged or truncated", "export the model again"],
                model=lambda m: (m / "saved_model.pb").write_bytes((m / "saved_model.pb").read_bytes()[:3000]))
    corpus.case("savedmodel-pb-garbage", "saved_model.pb garbage", ["inspect", "{case}/model"], 2,
                [pb, "damaged or truncated", "export the model again"],
                model=lambda m: (m / "saved_model.pb").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()))
    corpus.case("savedmodel-pb-empty", "saved_model.pb empty", ["inspect", "{case}/model"], 2,
                ["saved_model.pb", "holds no MetaGraph"],
                model=lambda m: (m / "saved_model.pb").write_bytes(b""))
    corpus.case("savedmodel-pb-is-a-folder", "a folder where a file is expected", ["inspect", "{case}/model"], 2,
                [pb, "is a folder", "export the model again"],
                model=lambda m: ((m / "saved_model.pb").unlink(), (m / "saved_model.pb").mkdir(),
                                 (m / "saved_model.pb" / "README").write_text("a folder, not a file\n")))

    # --- variables
    index = "{case}/model/variables/variables.index"
    data = "{case}/model/variables/variables.data-00000-of-00001"
    corpus.case("variables-index-bitflip", "variables.index bit-flipped", ["inspect", "{case}/model"], 2,
                [index, "not a valid checkpoint index", "checksum", "re-export the SavedModel"],
                model=lambda m: flip_bit(m / "variables" / "variables.index", 40, 3))
    corpus.case("variables-index-truncated", "variables.index truncated", ["inspect", "{case}/model"], 2,
                [index, "not a valid checkpoint index"],
                model=lambda m: (m / "variables" / "variables.index").write_bytes(
                    (m / "variables" / "variables.index").read_bytes()[:-20]))
    corpus.case("variables-data-bitflip", "variables.data bit-flipped",
                ["predict", "{case}/model", "--input", "{case}/features.npy", "--out", "{out}"], 2,
                [data, "checksum", "re-export the SavedModel"], files={"features.npy": features},
                model=lambda m: flip_bit(m / "variables" / "variables.data-00000-of-00001", 10, 5))
    corpus.case("variables-data-truncated", "variables.data truncated", ["inspect", "{case}/model"], 2,
                [data, "is truncated"],
                model=lambda m: (m / "variables" / "variables.data-00000-of-00001").write_bytes(
                    (m / "variables" / "variables.data-00000-of-00001").read_bytes()[:30]))
    corpus.case("variables-data-missing", "variables.data missing",
                ["predict", "{case}/model", "--input", "{case}/features.npy", "--out", "{out}"], 2,
                ["variables.data-00000-of-00001 is missing"], files={"features.npy": features},
                model=lambda m: (m / "variables" / "variables.data-00000-of-00001").unlink())
    corpus.case("variables-shape-mismatch", "variable shape disagrees with the graph",
                ["predict", "{case}/model", "--input", "{case}/features.npy", "--out", "{out}"], 2,
                [index, "dense/kernel", "(5, 3)", "(4, 3)", "re-export the SavedModel"], files={"features.npy": features},
                model=reshape_kernel)

    # --- signatures
    corpus.case("signature-missing", "a missing signature",
                ["predict", "{case}/model", "--input", "{case}/features.npy", "--out", "{out}"], 2,
                [pb, "has no signatures", "export the model with one"], files={"features.npy": features}, model=drop_signatures)
    corpus.case("signature-unknown", "a missing signature",
                ["predict", "{fixture:tf1_linear/tf1}", "--signature", "classify", "--input", "{case}/features.npy",
                 "--out", "{out}"], 2,
                ["no signature 'classify'", "serving_default", "--signature"], files={"features.npy": features})

    # --- npy inputs
    corpus.case("npy-bad-magic", "an input array with a bad header",
                ["predict", "{fixture:tf1_linear/tf1}", "--input", "{case}/features.npy", "--out", "{out}"], 2,
                ["{case}/features.npy", "not a .npy file"], files={"features.npy": b"NUMPY" + features[6:]})
    corpus.case("npy-truncated", "an input array cut short",
                ["predict", "{fixture:tf1_linear/tf1}", "--input", "{case}/features.npy", "--out", "{out}"], 2,
                ["{case}/features.npy", "truncated"], files={"features.npy": features[:-7]})
    corpus.case("npy-is-a-folder", "a folder where a file is expected",
                ["predict", "{fixture:tf1_linear/tf1}", "--input", "{case}/features.npy", "--out", "{out}"], 2,
                ["{case}/features.npy", "is a folder", "give a .npy file"], files={"features.npy/README": "a folder, not a file\n"})

    # --- images (skipped with one warning: the documented behaviour; --strict makes it fatal)
    skipped = "warning: skipped 1 unreadable image(s): {case}/images/"
    predict_images("image-zero-bytes", "a zero-byte image", "empty.png", b"", [skipped + "empty.png"])
    predict_images("image-png-truncated", "a truncated PNG", "cut.png", good_png[: len(good_png) // 2],
                   [skipped + "cut.png"])
    predict_images("image-jpeg-truncated", "a truncated JPEG", "cut.jpg", good_jpg[: len(good_jpg) // 2],
                   [skipped + "cut.jpg"])
    huge = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 50000, 50000, 8, 2, 0, 0, 0))
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64, 9)) + png_chunk(b"IEND", b""))
    predict_images("image-png-50000x50000", "a PNG whose header claims 50000x50000", "huge.png", huge,
                   [skipped + "huge.png"])
    sof = good_jpg.index(b"\xff\xc0")
    huge_jpg = good_jpg[:sof + 5] + struct.pack(">HH", 60000, 60000) + good_jpg[sof + 9:]
    predict_images("image-jpeg-60000x60000", "a PNG whose header claims 50000x50000", "huge.jpg", huge_jpg,
                   [skipped + "huge.jpg"])
    corpus.case("image-png-50000x50000-strict", "a PNG whose header claims 50000x50000",
                train_images + ["--strict"], 2, ["{case}/data/b/huge.png", "50000x50000", "more than the 64 megapixels", "scale it down"],
                files={**train_data(["a", "b"], 2), "data/b/huge.png": huge})
    bad_crc = bytearray(good_png)
    idat = good_png.index(b"IDAT")
    bad_crc[idat + 4 + struct.unpack(">I", good_png[idat - 4:idat])[0]] ^= 0x10  # the data intact, its CRC wrong
    predict_images("image-png-bad-crc", "a PNG with a wrong CRC", "crc.png", bytes(bad_crc), [skipped + "crc.png"])
    predict_images("image-text-named-png", "a non-image file in a class folder", "notes.png", "not an image\n",
                   [skipped + "notes.png"])
    predict_images("image-html-named-jpg", "a non-image file in a class folder", "page.jpg",
                   "<html><body>404 Not Found</body></html>\n", [skipped + "page.jpg"])
    corpus.case("image-truncated-strict", "a truncated JPEG", train_images + ["--strict"], 2,
                ["{case}/data/a/cut.jpg", "replace or remove it", "--strict"],
                files={**train_data(["a", "b"], 2), "data/a/cut.jpg": good_jpg[: len(good_jpg) // 3]})
    corpus.case("images-all-unreadable", "a zero-byte image",
                ["predict", IMAGE_MODEL, "--images", "{case}/images"], 2,
                ["{case}/images", "no readable image", "give JPEG, PNG"],
                files={"images/empty.png": b"", "images/notes.jpg": "text\n"})

    # images that decode: CMYK JPEG (converted as TensorFlow converts it) and 16-bit PNG (high byte)
    blocks = rng.integers(0, 256, size=(4, 8, 4), dtype=np.uint8)
    cmyk = cmyk_jpeg(blocks, 64, 32)
    predict_images("image-cmyk-jpeg", "a CMYK JPEG", "cmyk.jpg", cmyk, [],
                   decodes=dict(file="{case}/images/cmyk.jpg", **reference(cmyk, "jpeg")))
    plain = cmyk_jpeg(blocks, 64, 32, adobe_transform=None)
    predict_images("image-cmyk-jpeg-no-adobe-marker", "a CMYK JPEG", "cmyk.jpg", plain, [],
                   decodes=dict(file="{case}/images/cmyk.jpg", **reference(plain, "jpeg")))
    ycck = cmyk_jpeg(blocks, 64, 32, adobe_transform=2)
    predict_images("image-ycck-jpeg", "a CMYK JPEG", "ycck.jpg", ycck, [],
                   decodes=dict(file="{case}/images/ycck.jpg", **reference(ycck, "jpeg")))
    deep = rng.integers(0, 65536, size=(8, 8, 3), dtype=np.uint16)
    png16 = png(8, 8, [deep[y].astype(">u2").tobytes() for y in range(8)], bit_depth=16)
    predict_images("image-png-16bit", "a 16-bit PNG", "deep.png", png16, [],
                   decodes=dict(file="{case}/images/deep.png", **reference(png16, "png")))

    # --- image folders
    corpus.case("dataset-empty", "an empty dataset", train_images, 2,
                ["{case}/data", "has no class folders", "sub-folder"], files={"data": None, "data/.keep": ""})
    corpus.case("dataset-single-class", "an empty dataset", train_images, 2,
                ["{case}/data", "single class folder", "at least two classes"], files=train_data(["only"], 2))
    corpus.case("class-folder-without-images", "a class folder with no images", train_images, 2,
                ["{case}/data/b", "has no images"],
                files={**train_data(["a"], 2), "data/b/README.txt": "the images never arrived\n"})
    corpus.case("data-is-a-file", "a file where a folder is expected", train_images, 2,
                ["{case}/data", "is not a folder", "sub-folder per class"], files={"data": "not a folder\n"})
    eleven = [chr(ord("a") + i) for i in range(11)]
    corpus.case("labels-beyond-head-train", "labels beyond the head size",
                ["train", IMAGE_MODEL, "--data", "{case}/data", "--epochs", "1", "--out", "{out}"], 2,
                ["{case}/data", "11 class folders", "scores 10 classes", "add --head"], files=train_data(eleven))
    corpus.case("labels-beyond-head-evaluate", "labels beyond the head size",
                ["evaluate", IMAGE_MODEL, "--data", "{case}/data"], 2,
                ["{case}/data", "11 class folders", "scores 10 classes", "finetune train --head"],
                files=train_data(eleven))

    # --- text
    corpus.case("text-invalid-utf8", "text with invalid UTF-8",
                ["evaluate", TEXT_MODEL, "--task", "causal-lm", "--data", "{case}/text.txt", "--seq-len", "8"], 0,
                ["warning:", "{case}/text.txt", "byte 12", "replaced by U+FFFD"],
                files={"text.txt": b"The licence \xff\xfe grants rights to everyone who reads it.\n"})
    corpus.case("text-invalid-utf8-strict", "text with invalid UTF-8",
                ["train", TEXT_MODEL, "--task", "causal-lm", "--data", "{case}/text.txt", "--strict", "--out", "{out}"],
                2, ["{case}/text.txt", "byte 12"],
                files={"text.txt": b"The licence \xff\xfe grants rights to everyone who reads it.\n"})
    corpus.case("text-all-empty", "an empty dataset",
                ["train", TEXT_MODEL, "--task", "causal-lm", "--data", "{case}/texts", "--out", "{out}"], 2,
                ["{case}/texts", "is empty"], files={"texts/a.txt": "", "texts/b.txt": ""})
    corpus.case("text-folder-without-txt", "an empty dataset",
                ["train", TEXT_MODEL, "--task", "causal-lm", "--data", "{case}/texts", "--out", "{out}"], 2,
                ["{case}/texts", "no text files", "*.txt"], files={"texts/notes.md": "# not a .txt file\n"})

    # --- plans
    def plan_case(name, kind, plan_text, stderr):
        corpus.case(name, kind, train_images + ["--val-split", "0", "--plan", "{case}/plan.json"], 2,
                    ["{case}/plan.json"] + stderr,
                    files={**train_data(["a", "b"], 1), "plan.json": plan_text})
    plan_case("plan-unknown-key", "a plan file with unknown keys",
              '{"optimizer": {"name": "adam", "learning_rate": 0.001}, "learning_rate": 0.01}\n',
              ["unknown key 'learning_rate' in the plan", "known: ", "optimizer", "fix it there"])
    plan_case("plan-unknown-optimizer-key", "a plan file with unknown keys",
              '{"optimizer": {"name": "sgd", "learning_rate": 0.01, "momentun": 0.9}}\n',
              ["unknown key 'momentun' in the sgd optimizer", "momentum", "fix it there"])
    plan_case("plan-negative-learning-rate", "a plan file with bad values",
              '{"optimizer": {"name": "adam", "learning_rate": -0.001}}\n', ["learning rate", "-0.001", "fix it there"])
    plan_case("plan-unknown-optimizer", "a plan file with bad values",
              '{"optimizer": {"name": "adagrad"}}\n', ["unknown optimizer 'adagrad'", "use sgd, adam or adamw"])
    plan_case("plan-wrong-type", "a plan file with bad values",
              '{"stages": "head"}\n', ["\"stages\" must be a JSON array", "fix it there"])
    plan_case("plan-not-json", "a plan file with bad values",
              '{"optimizer": {"name": "adam",}\n', ["not valid JSON", "line 1", "fix it there"])
    plan_case("plan-not-an-object", "a plan file with bad values", '["adam"]\n', ["must be a JSON object"])

    # --- jobs files
    def jobs_case(name, kind, jobs_text, stderr):
        corpus.case(name, kind, ["batch", "{case}/jobs.json"], 2, ["{case}/jobs.json"] + stderr,
                    files={"jobs.json": jobs_text})
    jobs_case("jobs-unknown-key", "a jobs file with unknown keys",
              '{"jobs": [{"name": "a", "model": "m", "data": "d", "export": "o", "epoch": 3}]}\n',
              ["jobs[0]: unknown key \"epoch\"", "use one of "])
    jobs_case("jobs-bad-name", "a jobs file with bad values",
              '{"jobs": [{"name": "a b/c", "model": "m", "data": "d", "export": "o"}]}\n', ["name 'a b/c'", "letters, digits"])
    corpus.case("job-unknown-key", "a jobs file with unknown keys", ["train", "--job", "{case}/job.json"], 2,
                ["{case}/job.json", "unknown key \"epoch\"", "use one of "],
                files={"job.json": '{"model": "m", "data": "d", "epoch": 3}\n'})
    jobs_case("jobs-not-json", "a jobs file with bad values", '{"jobs": [\n', ["not valid JSON", "fix it there"])

    # --- arrays
    train_arrays = ["train", IMAGE_MODEL, "--task", "arrays", "--data", "{case}/table.csv", "--targets", "label",
                    "--epochs", "1", "--out", "{out}"]
    corpus.case("arrays-csv-text-cell", "a CSV table with a cell that is not a number", train_arrays, 2,
                ["{case}/table.csv", "line 3, column b", "'n/a' is not a number"],
                files={"table.csv": "a,b,label\n1,2,0\n3,n/a,1\n"})
    corpus.case("arrays-shape-disagrees", "arrays that do not fit the signature's input", train_arrays, 2,
                ["{case}/table.csv", "takes (None, 32, 32, 3)", "reshape it"],
                files={"table.csv": "a,b,label\n1,2,0\n3,4,1\n"})

    # --- checkpoints
    corpus.case("checkpoint-plan-garbage", "a plan file with bad values",
                ["export", "{case}/checkpoint", "--out", "{out}"], 2,
                ["{case}/checkpoint/plan.json", "not valid JSON", "resume from another checkpoint"],
                files={"checkpoint/plan.json": "\x00\x01 not json", "checkpoint/state.json": "{}\n"})

    # --- layer names (last: its images draw from the generator after every other case's)
    corpus.case("train-unknown-layer", "a layer name the model does not have",
                ["train", IMAGE_MODEL, "--data", "{case}/data", "--train", "nosuchlayer", "--epochs", "1", "--out",
                 "{out}"], 2,
                ["no layer or block named 'nosuchlayer'", "block1_conv1", "name one of them in --train"],
                files=train_data(["a", "b"], per_class=5))


def reshape_kernel(model):
    """Rewrites the checkpoint with dense/kernel of shape (5, 3) where the graph says (4, 3)."""
    import tensorflow as tf
    prefix = str(model / "variables" / "variables")
    reader = tf.train.load_checkpoint(prefix)
    names = sorted(reader.get_variable_to_shape_map())
    tensors = []
    for n in names:
        value = reader.get_tensor(n)
        if n == "dense/kernel":
            value = np.concatenate([value, value[:1]], axis=0)
        tensors.append(tf.constant(value))
    for f in (model / "variables").iterdir():
        f.unlink()
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names), tensors=tensors)


def drop_signatures(model):
    from tensorflow.core.protobuf import saved_model_pb2
    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((model / "saved_model.pb").read_bytes())
    for mg in sm.meta_graphs:
        mg.signature_def.clear()
    (model / "saved_model.pb").write_bytes(sm.SerializeToString(deterministic=True))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if OUT.exists():
        shutil.rmtree(OUT)
    corpus = Corpus(OUT)
    build(corpus)
    print("wrote %d cases under %s" % (len(corpus.names), OUT.relative_to(ROOT)))


if __name__ == "__main__":
    main()
