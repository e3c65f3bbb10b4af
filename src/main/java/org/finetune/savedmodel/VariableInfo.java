package org.finetune.savedmodel;

import java.util.List;
import java.util.Objects;

/**
 * One model variable.
 *
 * @param name its Keras path ({@code block1_conv1/kernel}); the checkpoint-free name the model saved
 * @param layer the layer it belongs to (the first component of the path)
 * @param shape its dimensions
 * @param dtype its dtype in Python's spelling
 * @param trainable per the object graph's SavedVariable (or the TF1 trainable collection)
 * @param handle the top-level graph node the serving function reads it through; empty when the
 *     signature does not read it
 * @param rngState true for a random generator's state (a Keras 3 SeedGenerator's
 *     {@code seed_generator_state}): saved with the model, read by dropout, but not a weight, so
 *     Keras does not count it among the parameters and neither do we
 */
public record VariableInfo(String name, String layer, List<Long> shape, String dtype, boolean trainable,
    String handle, boolean rngState) {
  public VariableInfo {
    Objects.requireNonNull(name, "name");
    Objects.requireNonNull(layer, "layer");
    Objects.requireNonNull(dtype, "dtype");
    Objects.requireNonNull(handle, "handle");
    shape = List.copyOf(shape);
  }

  /** The variable name Keras 3 gives a SeedGenerator's state. */
  public static final String SEED_STATE_NAME = "seed_generator_state";

  /** True when it counts as a model parameter (a weight, trainable or not). */
  public boolean weight() {
    return !rngState;
  }

  /** The number of scalars it holds. */
  public long size() {
    long n = 1;
    for (long d : shape) {
      n *= d;
    }
    return n;
  }
}
