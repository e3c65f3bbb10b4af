package org.finetune.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import org.finetune.data.NpyArray;
import org.finetune.model.KerasSavedModel;
import org.finetune.testing.Python;

/** One SGD step from the CLI against TensorFlow's own step on the same SavedModel. */
final class OneStepParity {
  private OneStepParity() {}

  /**
   * One SGD step (MSE, all rows of {@code x} in one batch) from the CLI; scripts/python_step.py
   * takes TensorFlow's own step (GradientTape through the loaded signature) on the same rows; the
   * two models' outputs after the step agree within {@link #ArrayTaskTest.TOLERANCE}, the step moved them, and
   * no trainable variable was left out.
   */
  static void check(Path tmp, Path model, String input, Path x, float[] targets, String what, String lr)
      throws IOException {
    NpyArray before;
    try (KerasSavedModel base = KerasSavedModel.open(model)) {
      before = org.finetune.export.ExportTest.signatureOutputs(base, java.util.Map.of(input, NpyArray.read(x)))
          .values().iterator().next();
    }
    Path target = tmp.resolve("target.npy");
    java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(4 * targets.length).order(java.nio.ByteOrder.LITTLE_ENDIAN);
    for (float v : targets) {
      b.putFloat(v);
    }
    new NpyArray("float32", before.shape(), b.array()).write(target);
    Path out = tmp.resolve("export");
    CliRun run = CliRun.of("train", model.toString(), "--task", "arrays", "--data", x.toString(), "--targets",
        target.toString(), "--loss", "mse", "--batch-size", Long.toString(before.shape()[0]), "--epochs", "1",
        "--no-shuffle", "--optimizer", "sgd", "--lr", lr, "--momentum", "0", "--out", out.toString());
    assertEquals(0, run.exit(), run.err());
    assertTrue(!run.err().contains("left out"), run.err());
    Python.run("python_step.py", "--model", model.toString(), "--input", input + "=" + x, "--target",
        target.toString(), "--lr", lr, "--out", tmp.resolve("python").toString());
    NpyArray python = NpyArray.read(tmp.resolve("python/after.npy"));
    try (KerasSavedModel trained = KerasSavedModel.open(out)) {
      NpyArray jvm = org.finetune.export.ExportTest.signatureOutputs(trained, java.util.Map.of(input, NpyArray.read(x)))
          .values().iterator().next();
      double diff = NpyArray.relativeDifference(python.toDoubles(), jvm.toDoubles());
      double moved = NpyArray.relativeDifference(before.toDoubles(), python.toDoubles());
      // Past 1e-5, how far TensorFlow's step moves from itself with the kernel library alone
      // (oneDNN off and on) decides: Java's runtime is a third order of float sums, held to twice
      // that floor, as KerasParityTest holds it.
      double floor = diff <= ArrayTaskTest.TOLERANCE ? 0 : floor(tmp, model, input, x, target, lr);
      double tolerance = Math.max(ArrayTaskTest.TOLERANCE, ArrayTaskTest.FLOOR_FACTOR * floor);
      System.out.printf("%s, one SGD step: Java vs TensorFlow %.3e (the step moved the outputs by %.3e)%s%n", what,
          diff, moved, floor > 0 ? String.format(" (TensorFlow oneDNN off vs on: %.3e)", floor) : "");
      assertTrue(moved > 100 * ArrayTaskTest.TOLERANCE, "the step moves the outputs: " + moved);
      assertTrue(diff <= tolerance, "Java's step vs TensorFlow's: " + diff + " (TensorFlow's floor " + floor + ")");
    }
  }

  /** max |after(oneDNN off) - after(oneDNN on)| / max |after(off)|: TensorFlow's step against itself. */
  private static double floor(Path tmp, Path model, String input, Path x, Path target, String lr) throws IOException {
    double[][] after = new double[2][];
    String[] modes = {"off", "on"};
    for (int i = 0; i < 2; i++) {
      Path out = tmp.resolve("python_" + modes[i]);
      Python.run("python_step.py", "--model", model.toString(), "--input", input + "=" + x, "--target",
          target.toString(), "--lr", lr, "--out", out.toString(), "--onednn", modes[i]);
      after[i] = NpyArray.read(out.resolve("after.npy")).toDoubles();
    }
    return NpyArray.relativeDifference(after[0], after[1]);
  }
}
