package org.finetune.train;

import java.util.Optional;
import org.finetune.model.FlatSignature;
import org.finetune.model.KerasSavedModel;

/**
 * The loss for targets the caller did not name one for, read from what Keras users compile with:
 * integer targets against a softmax are classes (sparse categorical cross-entropy), against a
 * sigmoid 0/1 labels (binary cross-entropy); float targets against a softmax are one-hot or soft
 * labels (categorical cross-entropy), against a sigmoid binary cross-entropy, against a linear
 * output values (mean squared error). Integer targets against a linear output could be classes
 * scored by logits or whole-number values, so no loss is chosen for them.
 *
 * @param loss the loss
 * @param reason why, in words, for the one line that states the choice
 */
public record LossChoice(LossSpec loss, String reason) {
  /**
   * The loss for {@code integerTargets} against a model whose output ends in {@code activation}
   * ({@code Softmax}, {@code Sigmoid} or empty for anything else).
   *
   * @return empty when the targets and output leave it open
   */
  public static Optional<LossChoice> infer(boolean integerTargets, int targetRank, int outputRank,
      Optional<String> activation) {
    String act = activation.orElse("linear");
    if (act.equals("Softmax")) {
      if (integerTargets && targetRank == outputRank - 1) {
        return Optional.of(new LossChoice(LossSpec.SPARSE_CATEGORICAL_CROSSENTROPY,
            "integer class labels against a softmax output"));
      }
      if (targetRank == outputRank) {
        return Optional.of(new LossChoice(LossSpec.CATEGORICAL_CROSSENTROPY,
            "one label vector per example against a softmax output"));
      }
      return Optional.empty();
    }
    if (act.equals("Sigmoid")) {
      return Optional.of(new LossChoice(LossSpec.BINARY_CROSSENTROPY, "targets against a sigmoid output"));
    }
    if (integerTargets) {
      return Optional.empty();
    }
    return Optional.of(new LossChoice(LossSpec.MSE, "float targets against a linear output"));
  }

  /**
   * The activation a signature output ends in: {@code Softmax}, {@code Sigmoid}, or empty for
   * anything else (read through Identity nodes).
   */
  public static Optional<String> finalActivation(KerasSavedModel model, String signature, String outputKey) {
    FlatSignature flat = model.flatSignature(signature);
    String tensor = flat.outputs().get(outputKey);
    if (tensor == null) {
      return Optional.empty();
    }
    for (String op : new String[] {"Softmax", "Sigmoid"}) {
      if (Losses.beneath(model.graph().output(tensor), op).isPresent()) {
        return Optional.of(op);
      }
    }
    return Optional.empty();
  }
}
