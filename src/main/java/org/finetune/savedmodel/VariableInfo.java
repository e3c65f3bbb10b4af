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
 * @param kind a weight, or saved state that Keras does not count among the parameters
 */
public record VariableInfo(String name, String layer, List<Long> shape, String dtype, boolean trainable,
    String handle, Kind kind) {
  /** What a saved variable is to the model. */
  public enum Kind {
    /** A weight, trainable or not: a parameter. */
    WEIGHT,
    /**
     * A random generator's state (a Keras 3 SeedGenerator's {@code seed_generator_state}): saved
     * with the model, read by dropout, not a weight.
     */
    RNG_STATE,
    /**
     * Training state a compiled tf_keras model saves beside its weights: the optimizer's
     * iteration, learning rate and slots ({@code optimizer/...}), the metrics' totals and counts
     * ({@code keras_api/metrics/...}).
     */
    TRAINING_STATE
  }

  public VariableInfo {
    Objects.requireNonNull(kind, "kind");
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
    return kind == Kind.WEIGHT;
  }

  /** True for a random generator's state. */
  public boolean rngState() {
    return kind == Kind.RNG_STATE;
  }

  /** The same variable as a weight of layer {@code owner}. */
  public VariableInfo withLayer(String owner) {
    return new VariableInfo(name, owner, shape, dtype, trainable, handle, kind);
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
