#!/usr/bin/env python3
"""SavedModels that must not be trusted, for finetune's unsafe-op audit (UnsafeOpsTest).

Writes under ``testdata/untrusted/`` (committed; each a few KB):

- ``init_writes_file``: a TF1 SavedModel whose init (main) op writes
  ``/tmp/finetune-untrusted-init-op-wrote-this.txt``: loading it runs that.
- ``serving_reads_file``: a TF2 SavedModel whose serving function reads ``/etc/hostname``.
- ``py_function``: a TF2 SavedModel whose serving function calls Python (``tf.py_function``).
- ``saver_op_in_serving``: a TF2 SavedModel whose serving function calls ``tf.raw_ops.SaveV2``
  (the saver's op outside the saver).
- ``asset_escapes``: a clean TF2 SavedModel whose MetaGraph names an asset file
  ``../../outside.txt``, outside its ``assets/`` folder.
- ``clean``: the same model as ``asset_escapes`` before that edit (must load).

Usage: scripts/make_untrusted_models.py   (with the project's venv)
"""
import os
import shutil
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import tensorflow as tf  # noqa: E402
from tensorflow.core.protobuf import saved_model_pb2  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
MARKER = "/tmp/finetune-untrusted-init-op-wrote-this.txt"


class Scale(tf.Module):
    def __init__(self):
        super().__init__()
        self.v = tf.Variable(2.0)


def tf1_init_writes_file(out):
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 2], name="x")
        w = tf.compat.v1.get_variable("w", initializer=tf.ones([2, 1]))
        y = tf.matmul(x, w, name="y")
        write = tf.io.write_file(MARKER, "written when the model was loaded")
        with tf.compat.v1.Session() as s:
            s.run(tf.compat.v1.global_variables_initializer())
            b = tf.compat.v1.saved_model.Builder(out)
            sig = tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": y})
            b.add_meta_graph_and_variables(s, ["serve"], signature_def_map={"serving_default": sig}, main_op=write)
            b.save()


def tf2(out, body):
    m = Scale()
    m.serve = tf.function(lambda x: {"y": body(m, x)}, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(m, out, signatures={"serving_default": m.serve})


def reads_file(m, x):
    n = tf.strings.length(tf.io.read_file("/etc/hostname"))
    return x * m.v + tf.cast(n, tf.float32)


def py_function(m, x):
    return tf.py_function(lambda a: a * 2.0, [x * m.v], tf.float32)


def saver_op(m, x):
    with tf.control_dependencies([tf.raw_ops.SaveV2(prefix="/tmp/finetune-untrusted-save", tensor_names=["v"],
                                                    shape_and_slices=[""], tensors=[m.v.read_value()])]):
        return x * m.v


def main():
    out = os.path.join(ROOT, "testdata", "untrusted")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    tf1_init_writes_file(os.path.join(out, "init_writes_file"))
    tf2(os.path.join(out, "serving_reads_file"), reads_file)
    tf2(os.path.join(out, "py_function"), py_function)
    tf2(os.path.join(out, "saver_op_in_serving"), saver_op)
    tf2(os.path.join(out, "clean"), lambda m, x: x * m.v)
    shutil.copytree(os.path.join(out, "clean"), os.path.join(out, "asset_escapes"))
    pb = os.path.join(out, "asset_escapes", "saved_model.pb")
    sm = saved_model_pb2.SavedModel()
    with open(pb, "rb") as f:
        sm.ParseFromString(f.read())
    asset = sm.meta_graphs[0].asset_file_def.add()
    asset.filename = "../../outside.txt"
    asset.tensor_info.name = "asset_path:0"
    with open(pb, "wb") as f:
        f.write(sm.SerializeToString())
    for name in sorted(os.listdir(out)):
        print(f"wrote {os.path.join(out, name)}")


if __name__ == "__main__":
    main()
    sys.exit(0)
