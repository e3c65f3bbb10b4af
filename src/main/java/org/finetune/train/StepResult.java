package org.finetune.train;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * What one training step (or one evaluation) measured, before the update.
 *
 * @param step the optimizer's step count before this step (0 for the first)
 * @param stage the stage that ran
 * @param loss the loss on the batch, including any L2-SP penalty
 * @param metrics metric name to value (accuracy, perplexity, ...)
 * @param learningRate the base learning rate used
 */
public record StepResult(long step, int stage, double loss, Map<String, Double> metrics, double learningRate) {
  public StepResult {
    metrics = Collections.unmodifiableMap(new LinkedHashMap<>(metrics));
  }
}
