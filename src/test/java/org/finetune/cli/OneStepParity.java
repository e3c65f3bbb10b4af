package org.finetune.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import org.finetune.data.NpyArray;
import org.finetune.model.KerasSavedModel;
import org.finetune.testing.Python;

/** One SGD step from the CLI against TensorFlow's own step on the same SavedModel. */
final class OneStepParity {
  private OneStepParity() {}

  /**
   * One SGD step (MSE, all rows of {@code x} in one batch) from the CLI; scripts/python_step.py
   * takes TensorFlow's own step (GradientTape through the loaded signature) on the same rows. The
   * two models' outputs after the step, and every trained variable (Java's export against
   * TensorFlow's, by name), agree within {@link ArrayTaskTest#TOLERANCE} (or twice TensorFlow's
   * own oneDNN-off-against-on spread, where Java is further than that); the step moved the outputs
   * and some variables by more than 1e-4 relative, and no trainable variable was left out.
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
        target.toString(), "--lr", lr, "--out", tmp.resolve("python").toString(), "--java-export", out.toString());
    NpyArray python = NpyArray.read(tmp.resolve("python/after.npy"));
    try (KerasSavedModel trained = KerasSavedModel.open(out)) {
      NpyArray jvm = org.finetune.export.ExportTest.signatureOutputs(trained, java.util.Map.of(input, NpyArray.read(x)))
          .values().iterator().next();
      double diff = NpyArray.relativeDifference(python.toDoubles(), jvm.toDoubles());
      double moved = NpyArray.relativeDifference(before.toDoubles(), python.toDoubles());
      Variables vars = Variables.read(tmp.resolve("python"));
      // Past 1e-5, how far TensorFlow's step moves from itself with the kernel library alone
      // (oneDNN off and on) decides: Java's runtime is a third order of float sums, held to twice
      // that floor, as KerasParityTest holds it; per variable likewise.
      boolean floorNeeded = diff > ArrayTaskTest.TOLERANCE || vars.worst() > ArrayTaskTest.TOLERANCE;
      Variables[] floors = floorNeeded ? floors(tmp, model, input, x, target, lr, out) : null;
      double floor = floors == null ? 0 : NpyArray.relativeDifference(floors[0].after, floors[1].after);
      // A floor that is not a number (TensorFlow's step diverged with one of the libraries) loosens nothing.
      double tolerance = tolerance(floor);
      System.out.printf("%s, one SGD step: Java vs TensorFlow %.3e on the outputs (the step moved them by %.3e)%s;"
          + " worst variable %.3e of %d (%d near zero, within %.1e), %d moved%n", what, diff, moved, floor > 0
              ? String.format(" (TensorFlow oneDNN off vs on: %.3e)", floor) : "", vars.worst(), vars.names.size(),
          vars.nearZero(), vars.noise(), vars.moved());
      assertTrue(moved > 100 * ArrayTaskTest.TOLERANCE, "the step moves the outputs: " + moved);
      assertTrue(diff <= tolerance, "Java's step vs TensorFlow's: " + diff + " (TensorFlow's floor " + floor + ")");
      // One step moves a weight little against its own size (EfficientNet's batch-norm scales by less
      // than 1e-4); the variables it moves further show that the comparison can fail.
      assertTrue(vars.moved() > 0, "the step moved some variable by more than " + 10 * ArrayTaskTest.TOLERANCE);
      for (int i = 0; i < vars.names.size(); i++) {
        if (vars.roundingZero(i)) {
          continue;
        }
        double d = vars.javaVsTf(i);
        double f = floors == null ? 0 : NpyArray.relativeDifference(floors[0].variable(i), floors[1].variable(i));
        double t = tolerance(f);
        assertTrue(d <= t, what + ": " + vars.names.get(i) + " after the step, Java vs TensorFlow " + d + " (floor " + f
            + ")");
      }
    }
  }

  private static double tolerance(double floor) {
    return Double.isNaN(floor) ? ArrayTaskTest.TOLERANCE : Math.max(ArrayTaskTest.TOLERANCE,
        ArrayTaskTest.FLOOR_FACTOR * floor);
  }

  /** What python_step.py wrote with --java-export: each trained variable after TensorFlow's step, before it, and Java's. */
  static final class Variables {
    final Path dir;
    final List<String> names;
    final double[] after;
    private double noise = -1;

    private Variables(Path dir, List<String> names, double[] after) {
      this.dir = dir;
      this.names = names;
      this.after = after;
    }

    static Variables read(Path dir) throws IOException {
      List<String> names = new java.util.ArrayList<>();
      com.google.gson.JsonParser.parseString(java.nio.file.Files.readString(dir.resolve("variables.json")))
          .getAsJsonArray().forEach(e -> names.add(e.getAsJsonObject().get("name").getAsString()));
      return new Variables(dir, names, NpyArray.read(dir.resolve("after.npy")).toDoubles());
    }

    double[] variable(int i) {
      return array("variables", i);
    }

    double[] array(String kind, int i) {
      try {
        return NpyArray.read(dir.resolve(kind).resolve(i + ".npy")).toDoubles();
      } catch (IOException e) {
        throw new java.io.UncheckedIOException(e);
      }
    }

    double javaVsTf(int i) {
      return NpyArray.relativeDifference(variable(i), array("java", i));
    }

    /** The worst of {@link #javaVsTf} over the variables, those near zero left out. */
    double worst() {
      double w = 0;
      for (int i = 0; i < names.size(); i++) {
        w = roundingZero(i) ? w : Math.max(w, javaVsTf(i));
      }
      return w;
    }

    /** {@link ArrayTaskTest#TOLERANCE} of the largest change the step made to any weight. */
    double noise() {
      if (noise >= 0) {
        return noise;
      }
      double step = 0;
      for (int i = 0; i < names.size(); i++) {
        double[] a = array("before", i);
        double[] b = variable(i);
        for (int j = 0; j < a.length; j++) {
          step = Math.max(step, Math.abs(a[j] - b[j]));
        }
      }
      noise = ArrayTaskTest.TOLERANCE * step;
      return noise;
    }

    /**
     * A variable that stays at rounding noise (a bias that starts at zero and whose gradient is zero
     * but for rounding): its values give a relative difference no scale, so it must instead agree
     * within {@link #noise()} and hold no more than that itself, as ArrayTaskTest.assertMatches holds it.
     */
    boolean roundingZero(int i) {
      double[] tf = variable(i);
      double[] jvm = array("java", i);
      double noise = noise();
      for (int j = 0; j < tf.length; j++) {
        if (Math.abs(tf[j]) > noise || Math.abs(tf[j] - jvm[j]) > noise) {
          return false;
        }
      }
      return true;
    }

    int nearZero() {
      int n = 0;
      for (int i = 0; i < names.size(); i++) {
        n += roundingZero(i) ? 1 : 0;
      }
      return n;
    }

    /** How many variables TensorFlow's step moved by more than 10 times the tolerance (relative). */
    int moved() {
      int n = 0;
      for (int i = 0; i < names.size(); i++) {
        n += NpyArray.relativeDifference(array("before", i), variable(i)) > 10 * ArrayTaskTest.TOLERANCE ? 1 : 0;
      }
      return n;
    }
  }

  /** TensorFlow's step with oneDNN off, then on: their spread is the floor. */
  private static Variables[] floors(Path tmp, Path model, String input, Path x, Path target, String lr, Path export)
      throws IOException {
    Variables[] out = new Variables[2];
    String[] modes = {"off", "on"};
    for (int i = 0; i < 2; i++) {
      Path dir = tmp.resolve("python_" + modes[i]);
      Python.run("python_step.py", "--model", model.toString(), "--input", input + "=" + x, "--target",
          target.toString(), "--lr", lr, "--out", dir.toString(), "--onednn", modes[i], "--java-export",
          export.toString());
      out[i] = Variables.read(dir);
    }
    return out;
  }
}
