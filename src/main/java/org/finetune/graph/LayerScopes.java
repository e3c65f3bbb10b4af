package org.finetune.graph;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Pattern;
import org.finetune.savedmodel.TensorNames;
import org.tensorflow.proto.GraphDef;
import org.tensorflow.proto.NodeDef;

/**
 * Finds a Keras layer's ops in a flat graph by their name scope, and what comes after them.
 *
 * <p>Keras opens a name scope per layer call. In a traced function TensorFlow makes scope names
 * unique with a numeric suffix ({@code mixed9} becomes {@code mixed9_1}, a layer named
 * {@code mixed9_1} becomes {@code mixed9_1_2}), so a path segment belongs to layer {@code L} when
 * it is {@code L_<n>}; only where no segment has that form is {@code L} itself taken (tf_keras
 * graphs keep plain names).
 */
public final class LayerScopes {
  private LayerScopes() {}

  /** Nodes of {@code graph} inside the name scope of layer {@code layer}. */
  public static Set<String> nodesOf(GraphDef graph, String layer) {
    Pattern suffixed = Pattern.compile(Pattern.quote(layer) + "_\\d+");
    Set<String> out = new HashSet<>();
    for (NodeDef n : graph.getNodeList()) {
      for (String seg : n.getName().split("/")) {
        if (suffixed.matcher(seg).matches()) {
          out.add(n.getName());
          break;
        }
      }
    }
    if (!out.isEmpty()) {
      return out;
    }
    for (NodeDef n : graph.getNodeList()) {
      for (String seg : n.getName().split("/")) {
        if (seg.equals(layer)) {
          out.add(n.getName());
          break;
        }
      }
    }
    return out;
  }

  /**
   * The layers (values of {@code readLayers}, keyed by read node name) whose weights enter the
   * forward pass after layer {@code layer}'s output; empty when no scope has that layer's name.
   *
   * <p>A weight "enters" where a computation on it alone (BatchNormalization folds beta, mean and
   * variance into a scale and an offset first) meets the activations, i.e. the ops that depend on
   * the graph's inputs ({@code inputs}, node names).
   */
  public static Optional<Set<String>> layersUsedAfter(GraphDef graph, String layer, Map<String, String> readLayers,
      Set<String> inputs) {
    Set<String> start = nodesOf(graph, layer);
    if (start.isEmpty()) {
      return Optional.empty();
    }
    Map<String, List<String>> consumers = consumers(graph);
    Set<String> after = downstream(consumers, start);
    Set<String> activations = downstream(consumers, inputs);
    Set<String> layers = new HashSet<>();
    readLayers.forEach((read, owner) -> {
      Set<String> seen = new HashSet<>();
      ArrayDeque<String> walk = new ArrayDeque<>(List.of(read));
      while (!walk.isEmpty()) {
        for (String c : consumers.getOrDefault(walk.poll(), List.of())) {
          if (!seen.add(c)) {
            continue;
          }
          if (activations.contains(c)) {
            if (after.contains(c)) {
              layers.add(owner);
              return;
            }
          } else {
            walk.add(c);
          }
        }
      }
    });
    return Optional.of(layers);
  }

  /**
   * The tensor layer {@code layer} outputs: the floating-point tensor made inside its scope, fed
   * by the graph's inputs, that ops outside the scope (or the graph's {@code outputs}) use; when
   * several are, the one the others lead to.
   *
   * @param inputs the graph's input node names
   * @param outputs the graph's output tensor names
   * @throws IllegalArgumentException when no scope has the layer's name or it has no single output
   */
  public static String outputOf(GraphDef graph, String layer, Set<String> inputs, java.util.Collection<String> outputs,
      OpDefs opDefs) {
    Set<String> scope = nodesOf(graph, layer);
    if (scope.isEmpty()) {
      throw new IllegalArgumentException("no layer named '" + layer + "' in the signature's graph");
    }
    Map<String, NodeDef> nodes = new HashMap<>();
    graph.getNodeList().forEach(n -> nodes.put(n.getName(), n));
    Map<String, List<String>> consumers = consumers(graph);
    Set<String> activations = downstream(consumers, inputs);
    Set<String> candidates = new java.util.LinkedHashSet<>();
    java.util.function.Consumer<String> consider = ref -> {
      String node = TensorNames.nodeOf(ref);
      String tensor = ref.contains(":") ? ref : ref + ":0";
      if (scope.contains(node) && activations.contains(node) && floating(nodes.get(node), tensor, opDefs)) {
        candidates.add(tensor);
      }
    };
    for (NodeDef n : graph.getNodeList()) {
      if (scope.contains(n.getName())) {
        continue;
      }
      for (String input : n.getInputList()) {
        if (!input.startsWith("^")) {
          consider.accept(input);
        }
      }
    }
    outputs.forEach(consider);
    // Keep the candidates no other candidate depends on.
    List<String> last = new ArrayList<>();
    for (String c : candidates) {
      boolean feedsAnother = false;
      Set<String> seen = new HashSet<>();
      ArrayDeque<String> walk = new ArrayDeque<>(List.of(TensorNames.nodeOf(c)));
      while (!walk.isEmpty() && !feedsAnother) {
        for (String next : consumers.getOrDefault(walk.poll(), List.of())) {
          if (seen.add(next)) {
            if (scope.contains(next) && candidates.stream().anyMatch(o -> TensorNames.nodeOf(o).equals(next))) {
              feedsAnother = true;
              break;
            }
            walk.add(next);
          }
        }
      }
      if (!feedsAnother) {
        last.add(c);
      }
    }
    if (last.size() != 1) {
      throw new IllegalArgumentException("layer '" + layer + "' has " + (last.isEmpty() ? "no output that later"
          + " layers use" : "several outputs " + last) + "; put the head on another layer");
    }
    return last.get(0);
  }

  private static boolean floating(NodeDef node, String tensor, OpDefs opDefs) {
    List<org.tensorflow.proto.DataType> types = opDefs.outputTypes(node);
    int index = Integer.parseInt(tensor.substring(tensor.lastIndexOf(':') + 1));
    if (index >= types.size()) {
      return false;
    }
    org.tensorflow.proto.DataType t = types.get(index);
    return t == org.tensorflow.proto.DataType.DT_FLOAT || t == org.tensorflow.proto.DataType.DT_HALF
        || t == org.tensorflow.proto.DataType.DT_BFLOAT16 || t == org.tensorflow.proto.DataType.DT_DOUBLE;
  }

  /** Node name to the nodes that take one of its outputs as a data input. */
  static Map<String, List<String>> consumers(GraphDef graph) {
    Map<String, List<String>> consumers = new HashMap<>();
    for (NodeDef n : graph.getNodeList()) {
      for (String input : n.getInputList()) {
        if (!input.startsWith("^")) {
          consumers.computeIfAbsent(TensorNames.nodeOf(input), k -> new ArrayList<>()).add(n.getName());
        }
      }
    }
    return consumers;
  }

  /** {@code starts} and every node their outputs flow into. */
  static Set<String> downstream(Map<String, List<String>> consumers, java.util.Collection<String> starts) {
    Set<String> out = new HashSet<>(starts);
    ArrayDeque<String> todo = new ArrayDeque<>(starts);
    while (!todo.isEmpty()) {
      for (String c : consumers.getOrDefault(todo.poll(), List.of())) {
        if (out.add(c)) {
          todo.add(c);
        }
      }
    }
    return out;
  }
}
