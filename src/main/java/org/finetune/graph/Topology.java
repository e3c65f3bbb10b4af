package org.finetune.graph;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.finetune.savedmodel.TensorNames;
import org.tensorflow.proto.NodeDef;

/** Orders the nodes of a graph or function body so that every node comes after its inputs. */
public final class Topology {
  private Topology() {}

  /**
   * Kahn's algorithm over data and control inputs within {@code nodes}; references to names
   * outside them (function arguments) are ignored. Nodes on a cycle (there should be none) come
   * last, in their original order. Stable: ties keep the original order.
   */
  public static List<NodeDef> sort(List<NodeDef> nodes) {
    Map<String, NodeDef> byName = new HashMap<>();
    nodes.forEach(n -> byName.put(n.getName(), n));
    Map<String, List<NodeDef>> consumers = new HashMap<>();
    Map<String, Integer> pending = new HashMap<>();
    for (NodeDef n : nodes) {
      int count = 0;
      for (String input : n.getInputList()) {
        String src = TensorNames.nodeOf(input);
        if (byName.containsKey(src)) {
          consumers.computeIfAbsent(src, k -> new ArrayList<>()).add(n);
          count++;
        }
      }
      pending.put(n.getName(), count);
    }
    ArrayDeque<NodeDef> ready = new ArrayDeque<>();
    nodes.stream().filter(n -> pending.get(n.getName()) == 0).forEach(ready::add);
    List<NodeDef> order = new ArrayList<>(nodes.size());
    Set<String> done = new HashSet<>();
    while (!ready.isEmpty()) {
      NodeDef n = ready.poll();
      order.add(n);
      done.add(n.getName());
      for (NodeDef c : consumers.getOrDefault(n.getName(), List.of())) {
        if (pending.merge(c.getName(), -1, Integer::sum) == 0) {
          ready.add(c);
        }
      }
    }
    nodes.stream().filter(n -> !done.contains(n.getName())).forEach(order::add);
    return order;
  }
}
