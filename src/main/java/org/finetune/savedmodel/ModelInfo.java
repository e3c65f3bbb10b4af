package org.finetune.savedmodel;

import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;

/**
 * What a SavedModel holds, read as data: how it was exported, its signatures, its variables
 * grouped into layers in forward order, the op types its serving function runs, and the ops on the
 * way from trainable variables to the outputs that have no gradient.
 *
 * @param dir the SavedModel directory
 * @param exportPath how it was written
 * @param tags the tags of the chosen MetaGraph
 * @param signatures every signature, by name
 * @param signature the signature the variables, op counts and gaps refer to
 * @param variables every model variable, each once, in forward order
 * @param layers the layers that own weights, in forward order
 * @param opCounts op type to number of nodes over the signature's function and all it calls
 * @param gradientGaps ops without a gradient and the layers behind them
 * @param nestedModels models the model calls as layers (Keras's summary lists each as one layer),
 *     by name, each with the layers of {@link #layers} it holds in forward order
 */
public record ModelInfo(Path dir, ExportPath exportPath, Set<String> tags, Map<String, SignatureInfo> signatures,
    String signature, List<VariableInfo> variables, List<LayerInfo> layers, Map<String, Long> opCounts,
    List<GradientGap> gradientGaps, Map<String, List<String>> nestedModels) {
  public ModelInfo {
    Objects.requireNonNull(dir, "dir");
    Objects.requireNonNull(exportPath, "exportPath");
    Objects.requireNonNull(signature, "signature");
    tags = Collections.unmodifiableSet(new TreeSet<>(tags));
    signatures = Collections.unmodifiableMap(new LinkedHashMap<>(signatures));
    variables = List.copyOf(variables);
    layers = List.copyOf(layers);
    opCounts = Collections.unmodifiableMap(new LinkedHashMap<>(opCounts));
    gradientGaps = List.copyOf(gradientGaps);
    Map<String, List<String>> nested = new LinkedHashMap<>();
    nestedModels.forEach((k, v) -> nested.put(k, List.copyOf(v)));
    nestedModels = Collections.unmodifiableMap(nested);
  }

  /** Parameters as Keras counts them: the size of every weight; random-generator state is not one. */
  public long totalParams() {
    return variables.stream().filter(VariableInfo::weight).mapToLong(VariableInfo::size).sum();
  }

  public long trainableParams() {
    return variables.stream().filter(v -> v.weight() && v.trainable()).mapToLong(VariableInfo::size).sum();
  }

  /** Random-generator state variables (dropout seeds), which are saved but are not parameters. */
  public List<VariableInfo> rngState() {
    return variables.stream().filter(VariableInfo::rngState).toList();
  }

  /** A compiled tf_keras model's optimizer and metric variables: saved, not parameters. */
  public List<VariableInfo> trainingState() {
    return variables.stream().filter(v -> v.kind() == VariableInfo.Kind.TRAINING_STATE).toList();
  }

  public long nonTrainableParams() {
    return totalParams() - trainableParams();
  }

  /** The chosen signature. */
  public SignatureInfo selectedSignature() {
    return signatures.get(signature);
  }

  /** Names of layers that have trainable variables behind an op without a gradient. */
  public Set<String> untrainableLayers() {
    Set<String> out = new java.util.LinkedHashSet<>();
    gradientGaps.forEach(g -> out.addAll(g.layers()));
    return out;
  }
}
