package org.finetune.job;

import java.util.Set;
import org.finetune.hint.Setting;
import org.finetune.model.KerasSavedModel;
import org.finetune.savedmodel.LayerInfo;
import org.finetune.savedmodel.SignatureInfo;
import org.finetune.savedmodel.TensorSpec;
import org.finetune.text.TextGenerator;

/**
 * A causal language model's inputs, exported like keras-hub's {@code GPT2CausalLM}:
 * {@code token_ids} and {@code padding_mask} in, logits out.
 *
 * @param positions the positions it can attend to (its context length)
 * @param transformerLayers its {@code transformer_layer_N} layers
 */
public record LanguageModelInput(int positions, int transformerLayers) {
  /**
   * Reads them from {@code model}'s selected signature and layers.
   *
   * @throws JobException when the signature takes other inputs or the context length is unknown
   */
  public static LanguageModelInput of(KerasSavedModel model) {
    SignatureInfo sig = model.info().selectedSignature();
    Set<String> inputs = Set.copyOf(sig.inputs().stream().map(TensorSpec::key).toList());
    if (!inputs.equals(Set.of("token_ids", "padding_mask"))) {
      throw new JobException("a causal language model takes token_ids and padding_mask (as keras-hub's GPT2CausalLM"
          + " exports); signature " + sig.name() + " takes " + inputs, Setting.MODEL, "");
    }
    int positions = TextGenerator.positions(model.info()).orElseThrow(() -> new JobException(
        "the model has no position_embedding layer, so its context length is unknown", Setting.MODEL, ""));
    return new LanguageModelInput(positions,
        ModelFamily.transformerLayers(model.info().layers().stream().map(LayerInfo::name).toList()));
  }

  /**
   * The tokens per block for a wanted length: 128 or the model's positions when shorter, by default.
   *
   * @throws JobException when the length exceeds the model's positions
   */
  public int blockLength(java.util.OptionalInt wanted) {
    int length = wanted.orElse(Math.min(128, positions));
    if (length > positions) {
      throw new JobException("the sequence length " + length + " exceeds the model's " + positions + " positions",
          Setting.SEQUENCE_LENGTH, "give at most " + positions + " tokens per block");
    }
    return length;
  }
}
