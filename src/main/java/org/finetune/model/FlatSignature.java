package org.finetune.model;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import org.finetune.graph.FunctionFlattener;

/**
 * A signature flattened into the loaded model's own graph (see {@link FunctionFlattener}): every
 * name here is a tensor of that graph, under the import prefix.
 *
 * @param signature the signature's name
 * @param prefix the import prefix of the flat nodes
 * @param inputs signature input key to the flat placeholder tensor
 * @param outputs signature output key to the flat tensor computing it
 * @param reads variable handle node (of the original graph, as in {@code VariableInfo.handle}) to
 *     the flat tensor that reads it; gradients are taken with respect to these
 * @param nodeCount how many nodes the flat graph added
 * @param graphDef the flat graph as imported, node names without the prefix
 * @param loops one line per {@code While} loop of the signature: unrolled into how many steps, or
 *     kept (without gradients) and why
 */
public record FlatSignature(String signature, String prefix, Map<String, String> inputs, Map<String, String> outputs,
    Map<String, String> reads, int nodeCount, org.tensorflow.proto.GraphDef graphDef, java.util.List<String> loops) {
  public FlatSignature {
    Objects.requireNonNull(signature, "signature");
    Objects.requireNonNull(prefix, "prefix");
    inputs = Collections.unmodifiableMap(new LinkedHashMap<>(inputs));
    outputs = Collections.unmodifiableMap(new LinkedHashMap<>(outputs));
    reads = Collections.unmodifiableMap(new LinkedHashMap<>(reads));
    Objects.requireNonNull(graphDef, "graphDef");
    loops = java.util.List.copyOf(loops);
  }

  /** The loops that stay loops, so that no gradient flows through them, each with the reason. */
  public java.util.List<String> keptLoops() {
    return loops.stream().filter(l -> !l.contains(" unrolled into ")).toList();
  }

  /** A tensor name of the imported graph without the import prefix (as in {@link #graphDef()}). */
  public String local(String tensor) {
    return tensor.startsWith(prefix + "/") ? tensor.substring(prefix.length() + 1) : tensor;
  }

  /** The nodes of {@link #graphDef()} (local names) that the signature's inputs are fed to. */
  public java.util.Set<String> inputNodes() {
    java.util.Set<String> out = new java.util.HashSet<>();
    inputs.values().forEach(t -> out.add(org.finetune.savedmodel.TensorNames.nodeOf(local(t))));
    return out;
  }

  /** The same flat graph as imported again under {@code other}. */
  public FlatSignature withPrefix(String other) {
    java.util.function.UnaryOperator<String> move = t -> other + "/" + local(t);
    Map<String, String> in = new LinkedHashMap<>();
    inputs.forEach((k, t) -> in.put(k, move.apply(t)));
    Map<String, String> out = new LinkedHashMap<>();
    outputs.forEach((k, t) -> out.put(k, move.apply(t)));
    Map<String, String> r = new LinkedHashMap<>();
    reads.forEach((h, t) -> r.put(h, move.apply(t)));
    return new FlatSignature(signature, other, in, out, r, nodeCount, graphDef, loops);
  }

  /** A tensor or node name of {@link #graphDef()} as imported. */
  public String imported(String local) {
    return prefix + "/" + local;
  }

  /**
   * The selected signature of {@code info} flattened from the MetaGraph alone, without loading the
   * model (no session runs, no init op): for reading the model's structure. Its names carry the
   * prefix {@code unloaded}, which no graph holds.
   */
  public static FlatSignature unloaded(org.tensorflow.proto.MetaGraphDef meta, org.finetune.savedmodel.ModelInfo info) {
    org.finetune.savedmodel.SignatureInfo sig = info.selectedSignature();
    Map<String, String> inputs = new LinkedHashMap<>();
    sig.inputs().forEach(t -> inputs.put(t.key(), t.tensorName()));
    Map<String, String> outputs = new LinkedHashMap<>();
    sig.outputs().forEach(t -> outputs.put(t.key(), t.tensorName()));
    FunctionFlattener.FlatGraph graph = FunctionFlattener.flatten(meta.getGraphDef(), inputs, outputs, Map.of(),
        meta.getObjectGraphDef(), org.finetune.graph.OpDefs.runtime());
    return imported(info.signature(), "unloaded", graph);
  }

  static FlatSignature imported(String signature, String prefix, FunctionFlattener.FlatGraph flat) {
    Map<String, String> inputs = new LinkedHashMap<>();
    flat.inputs().forEach((k, t) -> inputs.put(k, prefix + "/" + t));
    Map<String, String> outputs = new LinkedHashMap<>();
    flat.outputs().forEach((k, t) -> outputs.put(k, prefix + "/" + t));
    Map<String, String> reads = new LinkedHashMap<>();
    flat.variables().forEach((handle, v) -> reads.put(handle, prefix + "/" + v.read()));
    return new FlatSignature(signature, prefix, inputs, outputs, reads, flat.graphDef().getNodeCount(),
        flat.graphDef(), flat.loops());
  }
}
