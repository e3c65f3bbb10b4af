package org.finetune.savedmodel;

import java.util.ArrayList;
import java.util.BitSet;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.finetune.graph.GradientRegistry;
import org.finetune.graph.OpDefs;
import org.tensorflow.proto.AttrValue;
import org.tensorflow.proto.DataType;
import org.tensorflow.proto.FunctionDef;
import org.tensorflow.proto.MetaGraphDef;
import org.tensorflow.proto.NodeDef;

/**
 * Counts the op types a signature runs (its function and everything that calls into) and finds
 * the ops without a gradient that stand between trainable variables and the outputs.
 *
 * <p>The second part is a data-flow pass: every tensor carries the set of variables it depends on,
 * starting from the captured variable handles at the signature's call and following inputs through
 * function bodies, nested calls and control-flow branches. An op whose type has no gradient in the
 * runtime, that produces a floating-point value and that depends on a trainable variable blocks
 * {@code Graph.addGradients} for the layers behind it.
 */
final class OpAudit {
  record Result(Map<String, Long> opCounts, List<GradientGap> gaps) {}

  private final Map<String, FunctionDef> library = new HashMap<>();
  private final List<VariableInfo> variables;
  private final BitSet trainable = new BitSet();
  private final GradientRegistry gradients = GradientRegistry.builtIn();
  private final OpDefs opDefs = OpDefs.runtime();
  private final Map<String, BitSet> memo = new HashMap<>();
  private final Map<String, GradientGap> gaps = new LinkedHashMap<>();
  private final Map<String, Integer> layerOrder = new HashMap<>();

  private OpAudit(org.tensorflow.proto.GraphDef graph, List<VariableInfo> variables, List<LayerInfo> layers) {
    graph.getLibrary().getFunctionList().forEach(f -> library.put(f.getSignature().getName(), f));
    this.variables = variables;
    for (int i = 0; i < variables.size(); i++) {
      if (variables.get(i).trainable()) {
        trainable.set(i);
      }
    }
    for (int i = 0; i < layers.size(); i++) {
      layerOrder.put(layers.get(i).name(), i);
    }
  }

  static Result run(MetaGraphDef meta, SignatureInfo signature, VariableResolver.Resolved resolved,
      List<LayerInfo> layers) {
    OpAudit audit = new OpAudit(meta.getGraphDef(), resolved.variables(), layers);
    // Only what the outputs depend on: not the saver, not the init op, not other signatures.
    Set<String> needed = Ancestors.of(meta.getGraphDef().getNodeList(),
        signature.outputs().stream().map(TensorSpec::tensorName).toList(), Ancestors.Edges.DATA_AND_CONTROL);
    List<NodeDef> top = meta.getGraphDef().getNodeList().stream().filter(n -> needed.contains(n.getName())).toList();
    Map<String, Long> counts = new TreeMap<>();
    if (resolved.calls().isEmpty()) {
      // TF1: the ops are the top-level nodes the outputs depend on.
      top.forEach(n -> counts.merge(n.getOp(), 1L, Long::sum));
    } else {
      java.util.Set<String> reached = new java.util.LinkedHashSet<>();
      resolved.calls().forEach(c -> audit.collectFunctions(c, reached));
      for (String f : reached) {
        audit.library.get(f).getNodeDefList().forEach(n -> counts.merge(n.getOp(), 1L, Long::sum));
      }
    }
    Map<String, BitSet> sources = new HashMap<>();
    resolved.indexByHandle().forEach((handle, index) -> {
      BitSet b = new BitSet();
      b.set(index);
      sources.put(handle, b);
    });
    audit.body("", top, Map.of(), sources);
    Map<String, Long> sorted = new LinkedHashMap<>();
    counts.entrySet().stream()
        .sorted(Map.Entry.<String, Long>comparingByValue().reversed().thenComparing(Map.Entry.comparingByKey()))
        .forEach(e -> sorted.put(e.getKey(), e.getValue()));
    List<GradientGap> gaps = new ArrayList<>(audit.gaps.values());
    if (!gaps.isEmpty() && !resolved.calls().isEmpty()) {
      gaps = afterUnrolling(meta, signature, resolved, layers, sources).orElse(gaps);
    }
    return new Result(sorted, gaps);
  }

  /**
   * The gaps of the graph training runs: the signature flattened, its recurrent loops unrolled
   * (their While and TensorList ops have no gradient, the unrolled steps do) and the custom
   * gradients it saved attached to their IdentityNs, sequence lengths
   * the signature leaves free fixed as training's data fixes them. Empty when no loop
   * was unrolled and no custom gradient attached, or the signature cannot be flattened; the gaps of
   * the saved functions then stand.
   * Gaps here name flat nodes, in the graph at the top level.
   */
  private static java.util.Optional<List<GradientGap>> afterUnrolling(MetaGraphDef meta, SignatureInfo signature,
      VariableResolver.Resolved resolved, List<LayerInfo> layers, Map<String, BitSet> sources) {
    org.finetune.graph.FunctionFlattener.FlatGraph flat;
    try {
      Map<String, String> inputs = new LinkedHashMap<>();
      signature.inputs().forEach(t -> inputs.put(t.key(), t.tensorName()));
      Map<String, String> outputs = new LinkedHashMap<>();
      signature.outputs().forEach(t -> outputs.put(t.key(), t.tensorName()));
      // A length the signature leaves free is fixed by the data when training; any length will do here.
      Map<String, long[]> lengths = new LinkedHashMap<>();
      signature.inputs().stream().filter(t -> t.shape().size() > 1).forEach(t -> lengths.put(t.key(),
          t.shape().subList(1, t.shape().size()).stream().mapToLong(d -> d < 0 ? 8 : d).toArray()));
      flat = org.finetune.graph.FunctionFlattener.flatten(meta.getGraphDef(), inputs, outputs, lengths,
          meta.getObjectGraphDef(), OpDefs.runtime());
    } catch (RuntimeException e) {
      return java.util.Optional.empty();
    }
    if (flat.customGradients() == 0 && flat.loops().stream().noneMatch(l -> l.contains(" unrolled into "))) {
      return java.util.Optional.empty();
    }
    OpAudit audit = new OpAudit(flat.graphDef(), resolved.variables(), layers);
    audit.body("", flat.graphDef().getNodeList(), Map.of(), sources);
    // Only ops a gradient from the outputs would pass: a Round before a saved straight-through
    // gradient depends on a variable but is never differentiated.
    List<String> gapTensors = audit.gaps.values().stream().map(g -> g.node() + ":0").toList();
    Set<String> reached = org.finetune.graph.GradientPaths.reachable(flat.graphDef(), flat.outputs().values(),
        gapTensors, OpDefs.runtime(), GradientRegistry.builtIn());
    return java.util.Optional.of(audit.gaps.values().stream().filter(g -> reached.contains(g.node() + ":0")).toList());
  }

  private void collectFunctions(NodeDef node, Set<String> reached) {
    for (String f : calledFunctions(node)) {
      if (reached.add(f)) {
        library.get(f).getNodeDefList().forEach(n -> collectFunctions(n, reached));
      }
    }
  }

  private List<String> calledFunctions(NodeDef node) {
    List<String> out = new ArrayList<>();
    if (library.containsKey(node.getOp())) {
      out.add(node.getOp());
    }
    for (AttrValue v : node.getAttrMap().values()) {
      if (v.hasFunc()) {
        out.add(v.getFunc().getName());
      }
      v.getList().getFuncList().forEach(f -> out.add(f.getName()));
    }
    return out;
  }

  /**
   * Propagates dependencies through one body (a function's nodes or the top-level graph) in
   * topological order; returns, per node name, the variables it depends on.
   */
  private Map<String, BitSet> body(String function, List<NodeDef> nodes, Map<String, BitSet> args,
      Map<String, BitSet> sources) {
    Map<String, BitSet> deps = new HashMap<>(args);
    for (NodeDef node : org.finetune.graph.Topology.sort(nodes)) {
      BitSet d = new BitSet();
      BitSet own = sources.get(node.getName());
      if (own != null) {
        d.or(own);
      }
      List<BitSet> inputDeps = new ArrayList<>();
      for (String input : node.getInputList()) {
        if (input.startsWith("^")) {
          continue;
        }
        BitSet in = deps.getOrDefault(TensorNames.nodeOf(input), new BitSet());
        inputDeps.add(in);
        d.or(in);
      }
      List<String> callees = calledFunctions(node);
      if (!callees.isEmpty()) {
        d.or(call(node, callees, inputDeps));
        if (!node.getOp().endsWith("PartitionedCall") && !library.containsKey(node.getOp())) {
          // If, While, Case: the runtime differentiates what their branches do, not the op itself.
          checkGradient(function, node, d);
        }
      } else if (!node.getOp().isEmpty()) {
        checkGradient(function, node, d);
        if (!carriesGradient(node)) {
          d.clear();
        }
      }
      deps.put(node.getName(), d);
    }
    return deps;
  }

  private BitSet call(NodeDef node, List<String> callees, List<BitSet> inputDeps) {
    // If/Case take the branch selector first; the branches see the remaining inputs.
    boolean selector = node.getOp().endsWith("If") || node.getOp().endsWith("Case");
    List<BitSet> args = selector && !inputDeps.isEmpty() ? inputDeps.subList(1, inputDeps.size()) : inputDeps;
    BitSet out = new BitSet();
    for (String callee : callees) {
      out.or(function(callee, args));
    }
    return out;
  }

  /** The union of what a function's results depend on, given what its arguments depend on. */
  private BitSet function(String name, List<BitSet> args) {
    String key = name + args;
    BitSet cached = memo.get(key);
    if (cached != null) {
      return cached;
    }
    memo.put(key, new BitSet()); // recursion guard
    FunctionDef f = library.get(name);
    Map<String, BitSet> argDeps = new HashMap<>();
    for (int i = 0; i < f.getSignature().getInputArgCount(); i++) {
      argDeps.put(f.getSignature().getInputArg(i).getName(), i < args.size() ? args.get(i) : new BitSet());
    }
    Map<String, BitSet> deps = body(name, f.getNodeDefList(), argDeps, Map.of());
    BitSet out = new BitSet();
    for (String ret : f.getRetMap().values()) {
      out.or(deps.getOrDefault(TensorNames.nodeOf(ret), new BitSet()));
    }
    memo.put(key, out);
    return out;
  }

  /**
   * False when no gradient can flow out of the node: its type stops gradients on purpose (Shape,
   * StopGradient, ...), or every output is an integer, boolean or string tensor.
   */
  private boolean carriesGradient(NodeDef node) {
    if (gradients.kind(node.getOp()) == GradientRegistry.Kind.NO_GRADIENT) {
      return false;
    }
    List<DataType> outputs = opDefs.outputTypes(node);
    return outputs.isEmpty() || outputs.stream().anyMatch(t -> DTypes.differentiable(t)
        || t == DataType.DT_RESOURCE || t == DataType.DT_VARIANT);
  }

  private void checkGradient(String function, NodeDef node, BitSet deps) {
    if (gradients.kind(node.getOp()) != GradientRegistry.Kind.MISSING || !deps.intersects(trainable)
        || node.getAttrMap().containsKey(org.finetune.graph.SavedGradients.ATTR)) {
      return;
    }
    List<DataType> outputs = opDefs.outputTypes(node);
    boolean floating = outputs.isEmpty() ? opDefs.find(node.getOp()).isEmpty()
        : outputs.stream().anyMatch(DTypes::differentiable);
    if (!floating) {
      return;
    }
    BitSet behind = (BitSet) deps.clone();
    behind.and(trainable);
    java.util.SortedSet<String> layers = new java.util.TreeSet<>(
        Comparator.comparingInt((String l) -> layerOrder.getOrDefault(l, Integer.MAX_VALUE)).thenComparing(l -> l));
    behind.stream().forEach(i -> layers.add(variables.get(i).layer()));
    gaps.putIfAbsent(function + "/" + node.getName(),
        new GradientGap(node.getOp(), function, node.getName(), new ArrayList<>(layers)));
  }

}
