package org.finetune.train;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import org.finetune.data.NpyArray;

/**
 * One batch: the signature's inputs by name, and the targets (absent for losses whose targets are
 * the inputs, such as the causal-LM loss), or for a plan that trains several outputs, the targets
 * of each by output key.
 */
public record Batch(Map<String, NpyArray> inputs, Optional<NpyArray> targets, Map<String, NpyArray> targetsByOutput) {
  public Batch {
    inputs = Collections.unmodifiableMap(new LinkedHashMap<>(inputs));
    java.util.Objects.requireNonNull(targets, "targets");
    targetsByOutput = Collections.unmodifiableMap(new LinkedHashMap<>(targetsByOutput));
    if (targets.isPresent() && !targetsByOutput.isEmpty()) {
      throw new IllegalArgumentException("a batch has targets, or targets by output, not both");
    }
  }

  /** A batch with one output's targets (or none). */
  public Batch(Map<String, NpyArray> inputs, Optional<NpyArray> targets) {
    this(inputs, targets, Map.of());
  }

  /** A batch for a plan that trains several outputs: their targets by output key. */
  public static Batch ofOutputs(Map<String, NpyArray> inputs, Map<String, NpyArray> targets) {
    return new Batch(inputs, Optional.empty(), targets);
  }

  /** Whether the batch has targets of any kind. */
  public boolean labelled() {
    return targets.isPresent() || !targetsByOutput.isEmpty();
  }

  public static Batch of(Map<String, NpyArray> inputs, NpyArray targets) {
    return new Batch(inputs, Optional.of(targets));
  }

  public static Batch unlabelled(Map<String, NpyArray> inputs) {
    return new Batch(inputs, Optional.empty());
  }
}
