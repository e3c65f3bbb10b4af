package org.finetune.cli;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.finetune.data.NpyArray;
import org.finetune.model.KerasSavedModel;

/** Runs a signature on arrays and renders what comes out; shared by predict and demo. */
final class Predictions {
  private Predictions() {}

  /** Feeds {@code inputs}, returns every output copied out of the runtime. */
  static Map<String, NpyArray> run(KerasSavedModel model, String signature, Map<String, NpyArray> inputs) {
    try {
      return model.predictArrays(signature, inputs);
    } catch (IllegalArgumentException e) {
      throw new UsageException(Flags.message(e));
    }
  }

  /** One output: the top classes per row for a 2-D array, else its shape and value range. */
  static void describe(String name, NpyArray array, int top, PrintWriter out) {
    long[] shape = array.shape();
    double[] v = array.toDoubles();
    out.printf("%s: %s %s%n", name, array.dtype(), java.util.Arrays.toString(shape));
    if (shape.length == 2 && shape[1] > 1 && v.length > 0) {
      int cols = (int) shape[1];
      for (int r = 0; r < shape[0]; r++) {
        List<Integer> order = new ArrayList<>();
        for (int c = 0; c < cols; c++) {
          order.add(c);
        }
        final int row = r;
        order.sort((a, b) -> Double.compare(v[row * cols + b], v[row * cols + a]));
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < Math.min(top, cols); i++) {
          int c = order.get(i);
          b.append(i > 0 ? ", " : "").append("class ").append(c).append(' ')
              .append(String.format(Locale.ROOT, "%.4f", v[r * cols + c]));
        }
        out.printf("  row %d: %s%n", r, b);
      }
    } else if (v.length > 0) {
      double min = Double.POSITIVE_INFINITY;
      double max = Double.NEGATIVE_INFINITY;
      double sum = 0;
      for (double d : v) {
        min = Math.min(min, d);
        max = Math.max(max, d);
        sum += d;
      }
      out.printf("  min %s, max %s, mean %s%n", PredictCommand.fmt(min), PredictCommand.fmt(max),
          PredictCommand.fmt(sum / v.length));
    }
  }

}
