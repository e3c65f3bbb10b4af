package org.finetune.savedmodel;

import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import org.tensorflow.proto.NodeDef;

/** The nodes tensors depend on in a graph or function body, following the edges asked for. */
public final class Ancestors {
  private Ancestors() {}

  /** Which inputs a walk follows. */
  public enum Edges {
    /** Data inputs only: what a value is computed from. */
    DATA,
    /** Data and control inputs ({@code ^node}): everything that must run first. */
    DATA_AND_CONTROL
  }

  /**
   * The nodes of {@code nodes} that {@code tensors} (tensor names, node names or control inputs)
   * depend on, themselves included; names outside {@code nodes} (function arguments) end a walk.
   */
  public static Set<String> of(Map<String, NodeDef> nodes, Iterable<String> tensors, Edges edges) {
    Set<String> seen = new HashSet<>();
    ArrayDeque<String> todo = new ArrayDeque<>();
    tensors.forEach(t -> todo.add(TensorNames.nodeOf(t)));
    while (!todo.isEmpty()) {
      String name = todo.poll();
      NodeDef n = nodes.get(name);
      if (n == null || !seen.add(name)) {
        continue;
      }
      for (String input : n.getInputList()) {
        if (edges == Edges.DATA_AND_CONTROL || !input.startsWith("^")) {
          todo.add(TensorNames.nodeOf(input));
        }
      }
    }
    return seen;
  }

  /** {@link #of(Map, Iterable, Edges)} over a list of nodes. */
  public static Set<String> of(Iterable<NodeDef> nodes, Iterable<String> tensors, Edges edges) {
    Map<String, NodeDef> byName = new HashMap<>();
    nodes.forEach(n -> byName.put(n.getName(), n));
    return of(byName, tensors, edges);
  }
}
