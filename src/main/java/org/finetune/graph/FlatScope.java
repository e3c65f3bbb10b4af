package org.finetune.graph;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.tensorflow.proto.AttrValue;
import org.tensorflow.proto.FunctionDef;
import org.tensorflow.proto.NodeDef;
import org.tensorflow.proto.OpDef;

/**
 * Names in one body being flattened. A FunctionDef refers to tensors as {@code node:out_arg:idx}
 * or by argument name; the top-level graph as {@code node:idx}. Both resolve here to flat tensor
 * names.
 */
final class FlatScope {
  final String prefix;
  /** The function whose body this is ("" for the top-level graph). */
  final String function;
  final Map<String, String> args;
  final boolean graphNames;
  final List<String> controlIn = new ArrayList<>();
  /** Node name to its flat output tensors by output argument name (function bodies) or index. */
  private final Map<String, Map<String, List<String>>> byArg = new HashMap<>();
  private final Map<String, List<String>> flat = new HashMap<>();
  private final Map<String, String> nodeNames = new HashMap<>();
  private final OpDefs opDefs;
  private final Map<String, FunctionDef> library;

  FlatScope(String prefix, String function, Map<String, String> args, boolean graphNames, OpDefs opDefs,
      Map<String, FunctionDef> library) {
    this.prefix = prefix;
    this.function = function;
    this.args = args;
    this.graphNames = graphNames;
    this.opDefs = opDefs;
    this.library = library;
  }

  /** {@code node} of this body became the flat node {@code flatName}, whose op is {@code def}'s. */
  void emitted(String node, String flatName, NodeDef def) {
    Map<String, List<String>> outputs = new LinkedHashMap<>();
    List<String> all = new ArrayList<>();
    OpDef opDef = opDefs.find(def.getOp()).orElse(null);
    if (opDef != null) {
      Map<String, AttrValue> attrs = OpDefs.withDefaults(opDef, def.getAttrMap());
      for (OpDef.ArgDef arg : opDef.getOutputArgList()) {
        int n = OpDefs.argTypes(arg, attrs).size();
        List<String> tensors = new ArrayList<>();
        for (int i = 0; i < n; i++) {
          tensors.add(flatName + ":" + all.size());
          all.add(flatName + ":" + all.size());
        }
        outputs.put(arg.getName(), tensors);
      }
    } else if (!library.containsKey(def.getOp())) {
      throw new IllegalArgumentException("op " + def.getOp() + " (node " + node + ") is not registered in the"
          + " TensorFlow runtime this finetune links against");
    }
    byArg.put(node, outputs);
    flat.put(node, all);
    nodeNames.put(node, flatName);
  }

  /** {@code node} of this body stands for flat tensors made elsewhere (a shared read, a rewritten op). */
  void alias(String node, List<String> tensors, String flatNode) {
    byArg.put(node, Map.of("value", tensors, "ref", tensors));
    flat.put(node, tensors);
    nodeNames.put(node, flatNode);
  }

  /** {@code node}, with one output named {@code outputArg}, stands for the flat tensor {@code tensor}. */
  void single(String node, String outputArg, String tensor, String flatNode) {
    byArg.put(node, Map.of(outputArg, List.of(tensor)));
    flat.put(node, List.of(tensor));
    nodeNames.put(node, flatNode);
  }

  /**
   * {@code node} (a call, or a loop that was unrolled) computed {@code results}; control edges on
   * it wait for {@code done}.
   */
  void inlined(NodeDef node, List<String> results, List<String> outputArgNames, String done) {
    Map<String, List<String>> outputs = new LinkedHashMap<>();
    if (outputArgNames == null) {
      outputs.put("output", results);
    } else {
      for (int i = 0; i < results.size(); i++) {
        outputs.put(outputArgNames.get(i), List.of(results.get(i)));
      }
    }
    byArg.put(node.getName(), outputs);
    flat.put(node.getName(), results);
    nodeNames.put(node.getName(), done);
  }

  String nodeName(String node) {
    String n = nodeNames.get(node);
    if (n == null) {
      throw new IllegalArgumentException("unknown node " + node + " in " + (prefix.isEmpty() ? "the graph" : prefix));
    }
    return n;
  }

  /** A tensor reference of this body, as a flat tensor name (control inputs keep their caret). */
  String translate(String ref) {
    if (ref.startsWith("^")) {
      String node = ref.substring(1);
      return "^" + nodeName(node);
    }
    return tensor(ref);
  }

  /** A tensor of this body named as its graph names it ({@code node:index}, an argument {@code arg:0}). */
  java.util.Optional<String> graphTensor(String ref) {
    int colon = ref.lastIndexOf(':');
    String node = colon < 0 ? ref : ref.substring(0, colon);
    int index = colon < 0 ? 0 : Integer.parseInt(ref.substring(colon + 1));
    if (args.containsKey(node)) {
      return index == 0 ? java.util.Optional.of(args.get(node)) : java.util.Optional.empty();
    }
    List<String> outputs = flat.get(node);
    return outputs == null || index >= outputs.size() ? java.util.Optional.empty()
        : java.util.Optional.of(outputs.get(index));
  }

  String tensor(String ref) {
    String[] parts = ref.split(":");
    if (graphNames) {
      int index = parts.length > 1 ? Integer.parseInt(parts[1]) : 0;
      List<String> outputs = flat.get(parts[0]);
      if (outputs == null || index >= outputs.size()) {
        throw new IllegalArgumentException("unknown tensor " + ref + " in the graph");
      }
      return outputs.get(index);
    }
    if (parts.length == 1) {
      String arg = args.get(ref);
      if (arg == null) {
        throw new IllegalArgumentException("unknown argument " + ref + " in " + prefix);
      }
      return arg;
    }
    Map<String, List<String>> outputs = byArg.get(parts[0]);
    List<String> tensors = outputs == null ? null : outputs.get(parts[1]);
    int index = parts.length > 2 ? Integer.parseInt(parts[2]) : 0;
    if (tensors == null || index >= tensors.size()) {
      throw new IllegalArgumentException("unknown tensor " + ref + " in " + prefix);
    }
    return tensors.get(index);
  }
}
