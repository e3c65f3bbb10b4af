package org.finetune.cli;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.finetune.model.KerasSavedModel;
import org.finetune.savedmodel.LayerInfo;
import org.finetune.savedmodel.SignatureInfo;
import org.finetune.savedmodel.TensorSpec;
import org.finetune.text.TextGenerator;

/**
 * What the text commands need to know about a causal language model exported like keras-hub's
 * {@code GPT2CausalLM}: inputs {@code token_ids} and {@code padding_mask}, logits out, the
 * positions it can attend to, and its layer groups for gradual unfreezing, top first: the last
 * transformer layer with the final layer norm, each transformer layer below it, then the
 * embeddings.
 */
record LanguageModels(int positions, int transformerLayers, List<String> groups) {
  static LanguageModels of(KerasSavedModel model) {
    SignatureInfo sig = model.info().selectedSignature();
    Set<String> inputs = Set.copyOf(sig.inputs().stream().map(TensorSpec::key).toList());
    if (!inputs.equals(Set.of("token_ids", "padding_mask"))) {
      throw new UsageException("a causal language model takes token_ids and padding_mask (as keras-hub's GPT2CausalLM"
          + " exports); signature " + sig.name() + " takes " + inputs);
    }
    int positions = TextGenerator.positions(model.info()).orElseThrow(() -> new UsageException(
        "the model has no position_embedding layer, so its context length is unknown"));
    List<String> layers = model.info().layers().stream().map(LayerInfo::name).toList();
    int n = 0;
    while (layers.contains("transformer_layer_" + n)) {
      n++;
    }
    List<String> groups = new ArrayList<>();
    if (n > 0) {
      String top = "transformer_layer_" + (n - 1);
      groups.add(layers.contains("layer_norm") ? "layers:layer_norm," + top : "layers:" + top);
      for (int i = n - 2; i >= 0; i--) {
        groups.add("layers:transformer_layer_" + i);
      }
      List<String> embeddings = layers.stream().filter(l -> l.endsWith("_embedding")).toList();
      if (!embeddings.isEmpty()) {
        groups.add("layers:" + String.join(",", embeddings));
      }
    }
    return new LanguageModels(positions, n, List.copyOf(groups));
  }
}
