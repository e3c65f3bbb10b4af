package org.finetune.train;

import java.util.Objects;

/**
 * One output of a model trained with several, as Keras's {@code compile(loss={...},
 * loss_weights={...})}: the loss minimised is the sum over outputs of {@code weight * loss}.
 *
 * @param output the signature's output key
 * @param loss its loss
 * @param weight its weight in the sum (Keras's default 1)
 */
public record OutputLoss(String output, LossSpec loss, double weight) {
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
