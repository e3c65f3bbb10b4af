package org.finetune.savedmodel;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import org.tensorflow.proto.FunctionDef;
import org.tensorflow.proto.MetaGraphDef;
import org.tensorflow.proto.NodeDef;

/**
 * The layer each variable of a Keras 3 export belongs to, as {@code model.summary()} names it.
 *
 * <p>A Keras 3 variable's path is the name scopes open when it was created, then the layer's name,
 * then its own: a Sequential model builds its layers inside its own scope
 * ({@code sequential/dense/kernel}), and a Functional model built inside name scopes keeps them
 * (NASNet's {@code normal_A_block_0/normal_conv_1_0/kernel}). A layer that holds layers keeps its
 * own name first ({@code multi_head_attention/query/kernel}). The saved functions show which names
 * are the model's layers: each layer call opens a scope directly inside the model's
 * ({@code sequential_1/dense_1/MatMul}). So a variable belongs to the first segment of its path
 * that is such a scope; the model's own name is never a layer; where no segment is one, the first
 * segment (as before).
 */
final class KerasLayerNames {
  private KerasLayerNames() {}

  private static final Pattern CALL = Pattern.compile("(Stateful)?PartitionedCall(_\\d+)?");
  private static final Pattern SUFFIX = Pattern.compile("_\\d+$");

  /**
   * The variables with their layers named, and the models nested in the model as layers (a
   * {@code keras.applications} base called inside a new model), each with the layers it holds in
   * forward order: Keras's summary lists such a model as one layer, and its
   * {@code expand_nested=True} lists the layers inside it, whose names the variables carry.
   */
  record Named(List<VariableInfo> variables, Map<String, List<String>> nestedModels) {}

  /** {@code variables} with their layers named as Keras's summary names them. */
  static Named named(MetaGraphDef meta, List<VariableInfo> variables) {
    Map<String, Integer> outermost = new HashMap<>();
    Map<String, Set<String>> children = new HashMap<>();
    // model -> its child scope (plain) -> the scopes directly inside that child (plain)
    Map<String, Map<String, Set<String>>> grandchildren = new HashMap<>();
    for (FunctionDef f : meta.getGraphDef().getLibrary().getFunctionList()) {
      for (NodeDef n : f.getNodeDefList()) {
        String[] segments = n.getName().split("/");
        int first = 0;
        while (first < segments.length && CALL.matcher(segments[first]).matches()) {
          first++;
        }
        if (segments.length - first < 3) {
          continue;
        }
        String model = plain(segments[first]);
        outermost.merge(model, 1, Integer::sum);
        children.computeIfAbsent(model, k -> new HashSet<>()).add(segments[first + 1]);
        if (segments.length - first >= 4) {
          grandchildren.computeIfAbsent(model, k -> new HashMap<>())
              .computeIfAbsent(plain(segments[first + 1]), k -> new HashSet<>()).add(plain(segments[first + 2]));
        }
      }
    }
    if (outermost.isEmpty()) {
      return new Named(variables, Map.of());
    }
    String model = outermost.entrySet().stream().max(Map.Entry.comparingByValue()).get().getKey();
    Set<String> layers = new HashSet<>();
    for (String scope : children.get(model)) {
      layers.add(scope);
      layers.add(plain(scope));
    }
    List<VariableInfo> out = new ArrayList<>();
    for (VariableInfo v : variables) {
      out.add(v.kind() == VariableInfo.Kind.WEIGHT ? v.withLayer(layerOf(v.name(), model, layers)) : v);
    }
    return new Named(out, nested(out, grandchildren.getOrDefault(model, Map.of())));
  }

  /**
   * The model's child scopes that hold other layers' weights without holding their own: a nested
   * model (its layers' variables are named after the layers, not after it), where a layer that
   * holds layers (attention's query, key, value) has its own name first in its variables' names.
   */
  private static Map<String, List<String>> nested(List<VariableInfo> named, Map<String, Set<String>> inside) {
    java.util.LinkedHashSet<String> weightLayers = new java.util.LinkedHashSet<>();
    named.stream().filter(VariableInfo::weight).forEach(v -> weightLayers.add(v.layer()));
    Map<String, List<String>> out = new java.util.TreeMap<>();
    inside.forEach((child, scopes) -> {
      if (weightLayers.contains(child)) {
        return;
      }
      List<String> held = weightLayers.stream().filter(l -> !l.equals(child) && scopes.contains(l)).toList();
      if (!held.isEmpty()) {
        out.put(child, held);
      }
    });
    return out;
  }

  /** The layer of the variable at {@code path}, given the model's name and its layer scopes. */
  static String layerOf(String path, String model, Set<String> layers) {
    String[] segments = path.split("/");
    int from = segments.length > 2 && segments[0].equals(model) ? 1 : 0;
    for (int i = from; i < segments.length - 1; i++) {
      if (layers.contains(segments[i])) {
        return segments[i];
      }
    }
    return segments.length > 1 ? segments[from] : path;
  }

  /** A traced scope name without the {@code _<n>} TensorFlow adds to make it unique. */
  private static String plain(String scope) {
    return SUFFIX.matcher(scope).replaceFirst("");
  }
}
