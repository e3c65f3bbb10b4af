package org.finetune.train;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import org.finetune.data.NpyArray;

/**
 * One batch: the signature's inputs by name, and the targets (absent for losses whose targets are
 * the inputs, such as the causal-LM loss).
 */
public record Batch(Map<String, NpyArray> inputs, Optional<NpyArray> targets) {
  public Batch {
    inputs = Collections.unmodifiableMap(new LinkedHashMap<>(inputs));
    java.util.Objects.requireNonNull(targets, "targets");
  }

  public static Batch of(Map<String, NpyArray> inputs, NpyArray targets) {
    return new Batch(inputs, Optional.of(targets));
  }

  public static Batch unlabelled(Map<String, NpyArray> inputs) {
    return new Batch(inputs, Optional.empty());
  }
}
