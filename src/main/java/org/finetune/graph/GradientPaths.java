package org.finetune.graph;

import java.util.ArrayDeque;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Set;
import org.finetune.savedmodel.TensorNames;
import org.tensorflow.proto.DataType;
import org.tensorflow.proto.GraphDef;
import org.tensorflow.proto.NodeDef;

/**
 * Which tensors a gradient can flow back to from some outputs of a flat graph: walking inputs
 * backwards, it stops at ops registered as having no gradient (Shape, StopGradient, ...), at ops
 * the runtime has no gradient for (IdentityN of a custom gradient, ...) and at tensors that are
 * not floating point. {@code Graph.addGradients} fails for an unreachable
 * variable, so callers leave those out (with a warning).
 */
public final class GradientPaths {
  private GradientPaths() {}

  /** The subset of {@code candidates} (tensor names) that a gradient from {@code outputs} reaches. */
  public static Set<String> reachable(GraphDef graph, Collection<String> outputs, Collection<String> candidates,
      OpDefs opDefs, GradientRegistry registry) {
    Map<String, NodeDef> nodes = new HashMap<>();
    graph.getNodeList().forEach(n -> nodes.put(n.getName(), n));
    Set<String> seen = new HashSet<>();
    ArrayDeque<String> todo = new ArrayDeque<>();
    outputs.forEach(o -> todo.add(TensorNames.nodeOf(o)));
    while (!todo.isEmpty()) {
      String name = todo.poll();
      NodeDef node = nodes.get(name);
      if (node == null || !seen.add(name)) {
        continue;
      }
      GradientRegistry.Kind kind = node.getAttrMap().containsKey(SavedGradients.ATTR) ? GradientRegistry.Kind.GRADIENT
          : registry.kind(node.getOp());
      if (kind == GradientRegistry.Kind.NO_GRADIENT || (kind == GradientRegistry.Kind.MISSING
          && !node.getOp().isEmpty() && opDefs.find(node.getOp()).isPresent())) {
        continue;
      }
      for (String input : node.getInputList()) {
        if (input.startsWith("^")) {
          continue;
        }
        NodeDef src = nodes.get(TensorNames.nodeOf(input));
        if (src != null && differentiableOutput(src, input, opDefs)) {
          todo.add(src.getName());
        }
      }
    }
    Set<String> out = new LinkedHashSet<>();
    for (String c : candidates) {
      if (seen.contains(TensorNames.nodeOf(c))) {
        out.add(c);
      }
    }
    return out;
  }

  private static boolean differentiableOutput(NodeDef src, String ref, OpDefs opDefs) {
    java.util.List<DataType> types = opDefs.outputTypes(src);
    if (types.isEmpty()) {
      return true;
    }
    int colon = ref.lastIndexOf(':');
    int index = colon < 0 ? 0 : Integer.parseInt(ref.substring(colon + 1));
    if (index >= types.size()) {
      return true;
    }
    DataType t = types.get(index);
    return t == DataType.DT_FLOAT || t == DataType.DT_DOUBLE || t == DataType.DT_HALF || t == DataType.DT_BFLOAT16
        || t == DataType.DT_RESOURCE || t == DataType.DT_VARIANT;
  }
}
