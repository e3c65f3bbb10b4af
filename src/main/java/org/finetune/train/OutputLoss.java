package org.finetune.train;

import java.util.Objects;

/**
 * One output of a model trained with several, as Keras's {@code compile(loss={...},
 * loss_weights={...})}: the loss minimised is the sum over outputs of {@code weight * loss}.
 *
 * @param output the signature's output key
 * @param loss its loss
 * @param weight its weight in the sum (Keras's default 1)
 * @param fromLogits its values are logits (Keras's {@code from_logits=True})
 */
public record OutputLoss(String output, LossSpec loss, double weight, boolean fromLogits) {
  /** An output whose values are what its loss takes (probabilities for a cross-entropy). */
  public OutputLoss(String output, LossSpec loss, double weight) {
    this(output, loss, weight, false);
  }

  public OutputLoss {
    Objects.requireNonNull(output, "output");
    Objects.requireNonNull(loss, "loss");
    if (loss == LossSpec.CAUSAL_LM) {
      throw new IllegalArgumentException("output " + output + ": the causal-LM loss trains a language model's only"
          + " output");
    }
    if (!(weight >= 0) || Double.isInfinite(weight)) {
      throw new IllegalArgumentException("output " + output + ": a loss weight must be a finite number >= 0, got "
          + weight);
    }
  }
}
