package org.finetune.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.finetune.savedmodel.ModelInfo;
import org.finetune.savedmodel.SavedModelInspector;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The generality matrix's first two columns on every model scripts/make_array_models.py writes
 * (recurrent layers masked and not, stacked, bidirectional, returning sequences; attention; BERT;
 * two inputs and outputs; EfficientNet's custom gradients; a Keras 3 Sequential CNN; text through
 * TextVectorization and StringLookup; a base model nested as a layer): {@code inspect}'s totals are Keras's own count, and
 * {@code check} finds every layer with weights trainable and a finite step (exit 0). The third
 * column, training against Keras's fit, is ArrayTaskTest's.
 */
class ArrayModelsCheckTest {
  @ParameterizedTest
  @ValueSource(strings = {"tabular_mlp", "token_classifier", "image_tabular", "lstm_regressor", "bert_classifier",
      "gru_classifier", "recurrent_stack", "sequence_tagger", "any_length_lstm", "efficientnet_b0", "sequential_cnn",
      "text_lookup", "nested_base"})
  void inspectCountsAsKerasAndCheckPasses(String name) throws IOException {
    Path dir = ArrayTaskTest.arrayCase(name);
    JsonObject keras = JsonParser.parseString(Files.readString(dir.resolve("keras.json"))).getAsJsonObject();
    ModelInfo info = SavedModelInspector.inspect(dir.resolve("keras3_export"));
    assertEquals(keras.get("total_params").getAsLong(), info.totalParams(), name + ": total params");
    assertEquals(keras.get("trainable_params").getAsLong(), info.trainableParams(), name + ": trainable params");
    assertEquals(keras.get("non_trainable_params").getAsLong(), info.nonTrainableParams(),
        name + ": non-trainable params");
    CliRun run = CliRun.of("check", dir.resolve("keras3_export").toString());
    System.out.println(run.out());
    assertEquals(ExitCode.OK, run.exit(), run.out() + run.err());
    assertTrue(run.out().contains("Layers that cannot: none"), run.out());
    assertTrue(run.out().contains("Verdict: can be fine-tuned: gradients reach all"), run.out());
  }
}
