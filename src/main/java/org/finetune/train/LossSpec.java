package org.finetune.train;

/** The loss a training plan minimises, named as in Keras. */
public enum LossSpec {
  /** Integer class labels; from the logits beneath a final Softmax when there is one. */
  SPARSE_CATEGORICAL_CROSSENTROPY("sparse_categorical_crossentropy"),
  /** One-hot (or soft) labels; from the logits beneath a final Softmax when there is one. */
  CATEGORICAL_CROSSENTROPY("categorical_crossentropy"),
  /** 0/1 labels against a sigmoid output (from the logits beneath a final Sigmoid when there is one). */
  BINARY_CROSSENTROPY("binary_crossentropy"),
  /** Mean squared error. */
  MSE("mean_squared_error"),
  /** Mean absolute error. */
  MAE("mean_absolute_error"),
  /** Huber loss with Keras's default delta of 1: squared below it, linear above. */
  HUBER("huber"),
  /**
   * Next-token cross-entropy from logits {@code [batch, time, vocab]}: targets are the
   * {@code token_ids} input shifted by one, weighted by the {@code padding_mask} input, averaged
   * over the unmasked positions.
   */
  CAUSAL_LM("causal_lm");

  private final String kerasName;

  LossSpec(String kerasName) {
    this.kerasName = kerasName;
  }

  public String kerasName() {
    return kerasName;
  }

  /** Keras's short alias ({@code mse}, {@code mae}), or the name itself. */
  String shortName() {
    return switch (this) {
      case MSE -> "mse";
      case MAE -> "mae";
      default -> kerasName;
    };
  }

  /** Whether the targets are classes (integer labels, one-hot or 0/1) rather than values. */
  public boolean classifies() {
    return switch (this) {
      case SPARSE_CATEGORICAL_CROSSENTROPY, CATEGORICAL_CROSSENTROPY, BINARY_CROSSENTROPY -> true;
      default -> false;
    };
  }

  public static LossSpec byName(String name) {
    for (LossSpec l : values()) {
      if (l.kerasName.equals(name) || l.name().equalsIgnoreCase(name) || l.shortName().equals(name)) {
        return l;
      }
    }
    throw new IllegalArgumentException("unknown loss '" + name + "'; use sparse_categorical_crossentropy,"
        + " categorical_crossentropy, binary_crossentropy, mean_squared_error, mean_absolute_error, huber or causal_lm");
  }
}
