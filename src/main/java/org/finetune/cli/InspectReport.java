package org.finetune.cli;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.finetune.job.ModelFamily;
import org.finetune.savedmodel.GradientGap;
import org.finetune.savedmodel.LayerInfo;
import org.finetune.savedmodel.ModelInfo;
import org.finetune.savedmodel.SignatureInfo;
import org.finetune.savedmodel.TensorSpec;
import org.finetune.savedmodel.VariableInfo;

/** Renders a {@link ModelInfo} as a Keras-summary-like table or as JSON. */
final class InspectReport {
  private InspectReport() {}

  static void table(ModelInfo info, PrintWriter out) {
    out.println("Model: " + info.dir());
    out.println("Export path: " + info.exportPath().description() + "    Tags: " + String.join(",", info.tags()));
    out.println();
    List<String[]> rows = new ArrayList<>();
    for (LayerInfo layer : info.layers()) {
      boolean first = true;
      for (VariableInfo v : layer.variables()) {
        // The name within the layer: after the layer's own segment (a Sequential's or a name
        // scope's segments come before it).
        int at = ("/" + v.name()).indexOf("/" + layer.name() + "/");
        String variable = at < 0 ? v.name() : v.name().substring(at + layer.name().length() + 1);
        String var = (variable.isEmpty() ? v.name() : variable) + " " + shape(v.shape()) + " " + v.dtype()
            + (v.trainable() ? "" : " (non-trainable)");
        rows.add(first
            ? new String[] {layer.name(), var, number(layer.trainableParams() + layer.nonTrainableParams()),
                trainable(layer)}
            : new String[] {"", var, "", ""});
        first = false;
      }
    }
    String[] header = {"Layer", "Variables", "Params", "Trainable"};
    int[] width = new int[header.length];
    for (int i = 0; i < header.length; i++) {
      width[i] = header[i].length();
      for (String[] r : rows) {
        width[i] = Math.max(width[i], r[i].length());
      }
    }
    String format = "%-" + width[0] + "s  %-" + width[1] + "s  %" + width[2] + "s  %s%n";
    out.printf(format, (Object[]) header);
    out.printf(format, "-".repeat(width[0]), "-".repeat(width[1]), "-".repeat(width[2]), "-".repeat(width[3]));
    rows.forEach(r -> out.printf(format, (Object[]) r));
    out.println();
    out.println("Total params: " + number(info.totalParams()) + " (" + bytes(info) + ")");
    out.println("Trainable params: " + number(info.trainableParams()));
    out.println("Non-trainable params: " + number(info.nonTrainableParams()));
    out.println("Layers with weights: " + info.layers().size() + "    Weights: "
        + info.variables().stream().filter(VariableInfo::weight).count());
    info.nestedModels().forEach((model, held) -> {
      long params = info.layers().stream().filter(l -> held.contains(l.name()))
          .mapToLong(l -> l.trainableParams() + l.nonTrainableParams()).sum();
      out.println("Nested model " + model + " (one layer in Keras's summary, " + number(params) + " params): "
          + fewOf(held, 8) + "; naming it selects them all");
    });
    if (!info.rngState().isEmpty()) {
      out.println("Random-generator state (saved, not parameters): " + info.rngState().size() + " variables, e.g. "
          + info.rngState().get(0).name());
    }
    if (!info.trainingState().isEmpty()) {
      out.println("Optimizer and metric state (saved by compile and fit, not parameters): "
          + info.trainingState().size() + " variables, e.g. " + info.trainingState().get(0).name());
    }
    out.println();
    out.println("Signatures:");
    for (SignatureInfo sig : info.signatures().values()) {
      out.println("  " + sig.name() + (sig.name().equals(info.signature()) ? " (analysed)" : "")
          + (sig.method().isEmpty() ? "" : "  [" + sig.method() + "]"));
      for (TensorSpec t : sig.inputs()) {
        out.printf("    in   %-16s %-8s %s%n", t.key(), t.dtype(), t.shapeText());
      }
      for (TensorSpec t : sig.outputs()) {
        out.printf("    out  %-16s %-8s %s%n", t.key(), t.dtype(), t.shapeText());
      }
    }
    out.println();
    long nodes = info.opCounts().values().stream().mapToLong(Long::longValue).sum();
    out.println("Ops in " + info.signature() + " (" + info.opCounts().size() + " types, " + number(nodes) + " nodes):");
    List<String> ops = new ArrayList<>();
    info.opCounts().forEach((op, n) -> ops.add(op + " " + n));
    wrap(ops, out);
    out.println();
    out.println("Cannot be trained:");
    if (info.gradientGaps().isEmpty()) {
      out.println("  nothing: every trainable variable reaches the outputs through ops with gradients.");
    } else {
      // One line per op type: a model built from one block (EfficientNet's swish) has hundreds of gaps.
      Map<String, List<GradientGap>> byOp = new java.util.LinkedHashMap<>();
      info.gradientGaps().forEach(g -> byOp.computeIfAbsent(g.op(), k -> new java.util.ArrayList<>()).add(g));
      for (List<GradientGap> gaps : byOp.values()) {
        java.util.LinkedHashSet<String> layers = new java.util.LinkedHashSet<>();
        gaps.forEach(g -> layers.addAll(g.layers()));
        GradientGap first = gaps.get(0);
        String where = "node " + first.node() + (first.function().isEmpty() ? "" : " in " + first.function());
        out.println("  " + fewOf(List.copyOf(layers), 8) + ": behind " + first.op() + " ("
            + (gaps.size() == 1 ? where : gaps.size() + " nodes, first: " + where) + "), which has no gradient");
      }
    }
  }

  /** At most {@code n} names, then how many more. */
  /** One line on the model's family: what a job takes from it, or that there is none to take. */
  static String family(ModelFamily family) {
    if (!family.known()) {
      return "Family: none known (a job states the preprocessing, a new head's input and layer groups it"
          + " chooses, or asks for them)";
    }
    List<String> parts = new ArrayList<>();
    parts.add("Family: " + family.name());
    family.preprocess().ifPresent(p -> parts.add(p == org.finetune.data.ImageOps.Preprocess.NONE
        ? "preprocessing none (the model preprocesses its images)"
        : "preprocessing " + p.name().toLowerCase(Locale.ROOT)));
    family.featureLayer().ifPresent(l -> parts.add("a new head goes on " + l));
    if (!family.groups().isEmpty()) {
      parts.add(family.groups().size() + " layer groups for gradual unfreezing, top first");
    }
    return String.join("; ", parts);
  }

  static JsonObject familyJson(ModelFamily family) {
    JsonObject o = new JsonObject();
    o.addProperty("name", family.name());
    o.addProperty("known", family.known());
    family.preprocess().ifPresent(p -> o.addProperty("preprocess", p.name().toLowerCase(Locale.ROOT)));
    family.featureLayer().ifPresent(l -> o.addProperty("feature_layer", l));
    JsonArray groups = new JsonArray();
    family.groups().forEach(groups::add);
    o.add("groups", groups);
    return o;
  }

  static String fewOf(List<String> names, int n) {
    return names.size() <= n ? String.join(", ", names)
        : String.join(", ", names.subList(0, n)) + " and " + (names.size() - n) + " more layers";
  }

  static String json(ModelInfo info) {
    JsonObject root = new JsonObject();
    root.addProperty("path", info.dir().toString());
    root.addProperty("export_path", info.exportPath().id());
    root.addProperty("export_path_description", info.exportPath().description());
    JsonArray tags = new JsonArray();
    info.tags().forEach(tags::add);
    root.add("tags", tags);
    root.addProperty("signature", info.signature());
    JsonObject sigs = new JsonObject();
    for (SignatureInfo sig : info.signatures().values()) {
      JsonObject s = new JsonObject();
      s.addProperty("method", sig.method());
      s.add("inputs", specs(sig.inputs()));
      s.add("outputs", specs(sig.outputs()));
      sigs.add(sig.name(), s);
    }
    root.add("signatures", sigs);
    JsonArray layers = new JsonArray();
    for (LayerInfo layer : info.layers()) {
      JsonObject l = new JsonObject();
      l.addProperty("name", layer.name());
      l.addProperty("trainable_params", layer.trainableParams());
      l.addProperty("non_trainable_params", layer.nonTrainableParams());
      JsonArray vars = new JsonArray();
      for (VariableInfo v : layer.variables()) {
        JsonObject o = new JsonObject();
        o.addProperty("name", v.name());
        o.add("shape", longs(v.shape()));
        o.addProperty("dtype", v.dtype());
        o.addProperty("trainable", v.trainable());
        vars.add(o);
      }
      l.add("variables", vars);
      layers.add(l);
    }
    root.add("layers", layers);
    JsonObject nested = new JsonObject();
    info.nestedModels().forEach((model, held) -> {
      JsonArray names = new JsonArray();
      held.forEach(names::add);
      nested.add(model, names);
    });
    root.add("nested_models", nested);
    JsonArray rng = new JsonArray();
    info.rngState().forEach(v -> rng.add(v.name()));
    root.add("rng_state", rng);
    JsonArray trainingState = new JsonArray();
    info.trainingState().forEach(v -> trainingState.add(v.name()));
    root.add("training_state", trainingState);
    JsonObject totals = new JsonObject();
    totals.addProperty("total_params", info.totalParams());
    totals.addProperty("trainable_params", info.trainableParams());
    totals.addProperty("non_trainable_params", info.nonTrainableParams());
    root.add("totals", totals);
    JsonObject ops = new JsonObject();
    info.opCounts().forEach(ops::addProperty);
    root.add("ops", ops);
    JsonArray gaps = new JsonArray();
    for (GradientGap gap : info.gradientGaps()) {
      JsonObject g = new JsonObject();
      g.addProperty("op", gap.op());
      g.addProperty("function", gap.function());
      g.addProperty("node", gap.node());
      JsonArray ls = new JsonArray();
      gap.layers().forEach(ls::add);
      g.add("layers", ls);
      gaps.add(g);
    }
    root.add("cannot_be_trained", gaps);
    return new GsonBuilder().setPrettyPrinting().disableHtmlEscaping().create().toJson(root);
  }

  private static JsonObject specs(List<TensorSpec> specs) {
    JsonObject o = new JsonObject();
    for (TensorSpec t : specs) {
      JsonObject s = new JsonObject();
      s.addProperty("tensor", t.tensorName());
      s.addProperty("dtype", t.dtype());
      if (t.rankKnown()) {
        s.add("shape", longs(t.shape()));
      } else {
        s.add("shape", com.google.gson.JsonNull.INSTANCE);
      }
      o.add(t.key(), s);
    }
    return o;
  }

  private static JsonArray longs(List<Long> values) {
    JsonArray a = new JsonArray();
    values.forEach(a::add);
    return a;
  }

  private static String trainable(LayerInfo layer) {
    if (layer.nonTrainableParams() == 0) {
      return "yes";
    }
    // Partly: some weights are non-trainable, as BatchNormalization's moving statistics always are.
    return layer.trainableParams() == 0 ? "no" : "partly";
  }

  private static String shape(List<Long> dims) {
    StringBuilder b = new StringBuilder("(");
    for (int i = 0; i < dims.size(); i++) {
      b.append(i > 0 ? ", " : "").append(dims.get(i));
    }
    return b.append(dims.size() == 1 ? ",)" : ")").toString();
  }

  static String number(long n) {
    return String.format(Locale.ROOT, "%,d", n);
  }

  private static String bytes(ModelInfo info) {
    long total = 0;
    for (VariableInfo v : info.variables()) {
      if (v.weight()) {
        total += v.size() * bytesPer(v.dtype());
      }
    }
    double b = total;
    String[] units = {"B", "KB", "MB", "GB"};
    int u = 0;
    while (b >= 1024 && u < units.length - 1) {
      b /= 1024;
      u++;
    }
    return String.format(Locale.ROOT, "%.2f %s", b, units[u]);
  }

  private static int bytesPer(String dtype) {
    switch (dtype) {
      case "float64": case "int64": case "uint64": case "complex64": return 8;
      case "complex128": return 16;
      case "float16": case "bfloat16": case "int16": case "uint16": return 2;
      case "int8": case "uint8": case "bool": return 1;
      default: return 4;
    }
  }

  private static void wrap(List<String> items, PrintWriter out) {
    StringBuilder line = new StringBuilder("  ");
    for (int i = 0; i < items.size(); i++) {
      String item = items.get(i) + (i < items.size() - 1 ? "," : "");
      if (line.length() + item.length() + 1 > 100 && line.length() > 2) {
        out.println(line);
        line = new StringBuilder("  ");
      }
      line.append(line.length() > 2 ? " " : "").append(item);
    }
    if (line.length() > 2) {
      out.println(line);
    }
  }

}
