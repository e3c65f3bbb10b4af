package org.finetune.job;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.finetune.data.ArrayDataset;
import org.finetune.data.ArrayTable;
import org.finetune.data.ExampleArray;
import org.finetune.data.NpyArray;
import org.finetune.export.DirectoryDigest;
import org.finetune.hint.Setting;
import org.finetune.savedmodel.SignatureInfo;
import org.finetune.savedmodel.TensorSpec;

/**
 * An array task's examples as a signature takes them: one array per input, cast to the input's
 * dtype as Keras casts (int64 ids to int32, float64 to float32), and the targets.
 *
 * @param source the inputs' file
 * @param inputs one array per signature input, by its key
 * @param targets one row per example, by output key (under {@link ArrayDataset#TARGETS} for one output)
 * @param casts what was cast, in words ({@code tokens int64 -> int32}), for the data line
 */
record ArrayExamples(Path source, Map<String, ExampleArray> inputs, Map<String, NpyArray> targets,
    List<String> casts) {
  private static final List<String> NUMERIC = List.of("float32", "float64", "int32", "int64");

  /**
   * Reads {@code data} for signature {@code sig}.
   *
   * @throws JobException naming the file, the array and the fix
   */
  static ArrayExamples read(JobData.Arrays data, SignatureInfo sig) {
    try {
      return load(data, sig);
    } catch (JobException e) {
      throw e;
    } catch (IllegalArgumentException e) {
      throw JobException.of(Setting.DATA, e);
    }
  }

  private static ArrayExamples load(JobData.Arrays data, SignatureInfo sig) {
    String only = sig.inputs().size() == 1 ? sig.inputs().get(0).key() : "x";
    ArrayTable table = ArrayTable.read(data.inputs(), only);
    boolean csv = data.inputs().getFileName().toString().toLowerCase(Locale.ROOT).endsWith(".csv");
    Map<String, NpyArray> targets = new LinkedHashMap<>();
    List<String> consumed = new ArrayList<>();
    if (data.targets().byOutput().isEmpty()) {
      targets.put(ArrayDataset.TARGETS, targets(data.targets(), table, csv, consumed));
    } else {
      for (Map.Entry<String, JobData.Targets> e : data.targets().byOutput().entrySet()) {
        targets.put(e.getKey(), targets(e.getValue(), table, csv, consumed));
      }
    }
    table = table.without(consumed);
    for (Map.Entry<String, NpyArray> t : targets.entrySet()) {
      if (t.getValue().shape().length == 0 || t.getValue().shape()[0] != table.rows()) {
        String what = t.getKey().equals(ArrayDataset.TARGETS) ? "the targets" : "the targets of " + t.getKey();
        throw new JobException(what + " have " + (t.getValue().shape().length == 0 ? "no" : t.getValue().shape()[0])
            + " rows and " + data.inputs() + " has " + table.rows() + " examples", Setting.DATA,
            "give one target row per example");
      }
    }
    Map<String, ExampleArray> raw = new LinkedHashMap<>();
    if (csv) {
      if (sig.inputs().size() != 1) {
        throw new JobException("a CSV table is one input's features and signature " + sig.name() + " takes "
            + keys(sig), Setting.DATA, "save one array per input with numpy.savez(file, " + String.join("=..., ",
            keys(sig)) + "=...)");
      }
      raw.put(only, table.columns(new ArrayList<>(table.arrays().keySet())));
    } else {
      for (TensorSpec in : sig.inputs()) {
        if (!table.arrays().containsKey(in.key())) {
          throw new JobException(data.inputs() + " has no array '" + in.key() + "' for the signature's input of that"
              + " name; it has " + String.join(", ", table.arrays().keySet()), Setting.DATA,
              "save one array per input, named as the signature names it: " + String.join(", ", keys(sig)));
        }
        raw.put(in.key(), table.get(in.key()));
      }
      List<String> unused = table.arrays().keySet().stream().filter(k -> !raw.containsKey(k)).toList();
      if (!unused.isEmpty()) {
        throw new JobException(data.inputs() + " has array(s) " + String.join(", ", unused) + " that no input of"
            + " signature " + sig.name() + " takes (it takes " + String.join(", ", keys(sig)) + ")", Setting.DATA,
            "leave them out, or name them as the targets");
      }
    }
    Map<String, ExampleArray> inputs = new LinkedHashMap<>();
    List<String> casts = new ArrayList<>();
    for (TensorSpec in : sig.inputs()) {
      ExampleArray a = raw.get(in.key());
      checkShape(data.inputs(), in, a);
      boolean text = NpyArray.isText(a.dtype());
      if (in.dtype().equals("string") != text) {
        throw new JobException("input '" + in.key() + "' takes " + in.dtype() + " and " + data.inputs() + " holds "
            + a.dtype(), Setting.DATA, in.dtype().equals("string") ? "save it as text (a NumPy str array)"
            : "save it as " + in.dtype());
      }
      if (!text && !a.dtype().equals(in.dtype())) {
        if (!NUMERIC.contains(in.dtype()) || !NUMERIC.contains(a.dtype())) {
          throw new JobException("input '" + in.key() + "' takes " + in.dtype() + " and " + data.inputs() + " holds "
              + a.dtype(), Setting.DATA, "save it as " + in.dtype());
        }
        try {
          a = a.castTo(in.dtype());
        } catch (IllegalArgumentException e) {
          throw new JobException(data.inputs() + ": input '" + in.key() + "' cannot be cast from " + a.dtype() + " to "
              + in.dtype() + ": " + e.getMessage(), Setting.DATA, "save it as " + in.dtype());
        }
        casts.add(in.key() + " " + raw.get(in.key()).dtype() + " -> " + in.dtype());
      }
      inputs.put(in.key(), a);
    }
    return new ArrayExamples(data.inputs(), inputs, targets, casts);
  }

  private static NpyArray targets(JobData.Targets spec, ArrayTable table, boolean csv, List<String> consumed) {
    if (spec.file().isPresent()) {
      Path file = spec.file().get();
      ArrayTable t = ArrayTable.read(file, "targets");
      if (t.arrays().size() != 1) {
        throw new JobException(file + " holds " + t.arrays().size() + " arrays; the targets are one", Setting.DATA,
            "save the targets alone with numpy.save");
      }
      return inMemory(t.arrays().values().iterator().next());
    }
    List<String> names = spec.names();
    consumed.addAll(names);
    if (names.size() == 1) {
      return inMemory(table.get(names.get(0)));
    }
    if (csv) {
      return table.columns(names);
    }
    throw new JobException("several target arrays for one output", Setting.DATA,
        "name one array, or give each output its targets as OUTPUT=ARRAY");
  }

  /** Targets are read whole (one row per example, small beside the inputs). */
  private static NpyArray inMemory(ExampleArray a) {
    return a instanceof NpyArray n ? n : a.all();
  }

  private static void checkShape(Path file, TensorSpec in, ExampleArray a) {
    long[] shape = a.shape();
    List<Long> want = in.shape();
    boolean fits = !in.rankKnown() || want.size() == shape.length;
    for (int i = 1; fits && in.rankKnown() && i < shape.length; i++) {
      fits = want.get(i) < 0 || want.get(i) == shape[i];
    }
    if (!fits) {
      throw new JobException(file + ": input '" + in.key() + "' takes " + in.shapeText() + " and the array is "
          + java.util.Arrays.toString(shape), Setting.DATA, "reshape it to " + in.shapeText() + " with one row per"
          + " example");
    }
  }

  private static List<String> keys(SignatureInfo sig) {
    return sig.inputs().stream().map(TensorSpec::key).toList();
  }

  /** The number of examples. */
  int examples() {
    return Math.toIntExact(targets.values().iterator().next().shape()[0]);
  }

  /** The one output's targets (of a job that trains one output). */
  NpyArray single() {
    return targets.get(ArrayDataset.TARGETS);
  }

  /** Digest of the files read: the inputs' and, when apart, the targets'. */
  static String digest(JobData.Arrays data) {
    StringBuilder d = new StringBuilder(DirectoryDigest.of(data.inputs()));
    List<JobData.Targets> specs = data.targets().byOutput().isEmpty() ? List.of(data.targets())
        : List.copyOf(data.targets().byOutput().values());
    for (JobData.Targets t : specs) {
      t.file().ifPresent(f -> d.append('+').append(DirectoryDigest.of(f)));
    }
    return d.toString();
  }

  /** What was read, for the data line: {@code tokens [96, 12] int32 (cast: ...); targets [96] int64}. */
  String describe() {
    List<String> parts = new ArrayList<>();
    inputs.forEach((k, v) -> parts.add(k + " " + java.util.Arrays.toString(v.shape()) + " " + v.dtype()
        + (v instanceof NpyArray ? "" : " (mapped)")));
    String casted = casts.isEmpty() ? "" : " (cast: " + String.join(", ", casts) + ")";
    List<String> t = new ArrayList<>();
    targets.forEach((k, v) -> t.add((k.equals(ArrayDataset.TARGETS) ? "" : k + " ")
        + java.util.Arrays.toString(v.shape()) + " " + v.dtype()));
    return String.join(", ", parts) + casted + "; targets " + String.join(", ", t);
  }
}
