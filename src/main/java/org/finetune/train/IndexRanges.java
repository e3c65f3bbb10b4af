package org.finetune.train;

import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import org.finetune.model.FlatSignature;
import org.finetune.savedmodel.ModelInfo;
import org.finetune.savedmodel.TensorNames;
import org.finetune.savedmodel.VariableInfo;
import org.tensorflow.proto.NodeDef;

/**
 * Which values an integer input may take: ids that index a table (an embedding's rows) must be
 * below the table's first dimension. Found in the flat graph: every gather from a variable's read
 * whose indices are computed from the input's values (not its shape) bounds that input by the
 * variable's row count; an input that reaches several tables takes the smallest.
 */
final class IndexRanges {
  private static final Set<String> GATHERS = Set.of("GatherV2", "Gather", "ResourceGather");
  /** Ops whose output depends on a tensor's shape only: a path through them carries no ids. */
  private static final Set<String> SHAPE_ONLY = Set.of("Shape", "ShapeN", "Size", "Rank", "ZerosLike", "OnesLike");

  private IndexRanges() {}

  /** Input key to an exclusive upper bound, for the inputs that index a table. */
  static Map<String, Long> of(FlatSignature flat, ModelInfo info) {
    Map<String, NodeDef> nodes = new HashMap<>();
    flat.graphDef().getNodeList().forEach(n -> nodes.put(n.getName(), n));
    Map<String, Long> rowsByRead = new HashMap<>();
    for (VariableInfo v : info.variables()) {
      String read = flat.reads().get(v.handle());
      if (read != null && !v.shape().isEmpty() && v.shape().get(0) > 0) {
        rowsByRead.put(TensorNames.nodeOf(flat.local(read)), v.shape().get(0));
      }
    }
    Map<String, String> inputByPlaceholder = new HashMap<>();
    flat.inputs().forEach((key, tensor) -> inputByPlaceholder.put(TensorNames.nodeOf(flat.local(tensor)), key));
    Map<String, Long> bounds = new LinkedHashMap<>();
    for (NodeDef n : flat.graphDef().getNodeList()) {
      if (!GATHERS.contains(n.getOp()) || n.getInputCount() < 2) {
        continue;
      }
      Long rows = rowsByRead.get(TensorNames.nodeOf(n.getInput(0)));
      if (rows == null) {
        continue;
      }
      for (String placeholder : valueSources(nodes, n.getInput(1), inputByPlaceholder.keySet())) {
        bounds.merge(inputByPlaceholder.get(placeholder), rows, Math::min);
      }
    }
    return bounds;
  }

  /** The placeholders whose values (not only shapes) flow into {@code tensor}. */
  private static Set<String> valueSources(Map<String, NodeDef> nodes, String tensor, Set<String> placeholders) {
    return valueSources(nodes, tensor, placeholders, new HashSet<>());
  }

  /** As above; every node passed on the way is added to {@code seen}. */
  static Set<String> valueSources(Map<String, NodeDef> nodes, String tensor, Set<String> placeholders,
      Set<String> seen) {
    Set<String> found = new java.util.LinkedHashSet<>();
    ArrayDeque<String> todo = new ArrayDeque<>();
    todo.add(TensorNames.nodeOf(tensor));
    while (!todo.isEmpty()) {
      String name = todo.poll();
      if (!seen.add(name)) {
        continue;
      }
      if (placeholders.contains(name)) {
        found.add(name);
      }
      NodeDef n = nodes.get(name);
      if (n == null || SHAPE_ONLY.contains(n.getOp())) {
        continue;
      }
      for (String in : n.getInputList()) {
        if (!in.startsWith("^")) {
          todo.add(TensorNames.nodeOf(in));
        }
      }
    }
    return found;
  }
}
