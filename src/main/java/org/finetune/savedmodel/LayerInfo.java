package org.finetune.savedmodel;

import java.util.List;
import java.util.Objects;

/** A layer that owns weights, in forward order, with its parameter counts (RNG state excluded). */
public record LayerInfo(String name, List<VariableInfo> variables) {
  public LayerInfo {
    Objects.requireNonNull(name, "name");
    variables = List.copyOf(variables);
  }

  public long trainableParams() {
    return variables.stream().filter(v -> v.weight() && v.trainable()).mapToLong(VariableInfo::size).sum();
  }

  public long nonTrainableParams() {
    return variables.stream().filter(v -> v.weight() && !v.trainable()).mapToLong(VariableInfo::size).sum();
  }

  /** Trainable when any of its variables is (Keras's {@code layer.trainable} after a load). */
  public boolean trainable() {
    return variables.stream().anyMatch(VariableInfo::trainable);
  }
}
