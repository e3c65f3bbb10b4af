package org.finetune.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A Keras 3 Sequential model saves its variables under its own name (sequential/conv/kernel);
 * its layers are named as Keras's summary names them (conv, norm, classes), so that selectors
 * can name them, and a name it does not have is bad input. A model nested as a layer is named too.
 */
class SequentialNamesTest {
  @TempDir
  Path tmp;

  static Path model() {
    return ArrayTaskTest.arrayCase("sequential_cnn").resolve("keras3_export");
  }

  @Test
  void layersAreNamedAsKerasSummaryNamesThem() {
    CliRun run = CliRun.of("inspect", model().toString(), "--json");
    assertEquals(0, run.exit(), run.err());
    List<String> names = new ArrayList<>();
    JsonParser.parseString(run.out()).getAsJsonObject().getAsJsonArray("layers")
        .forEach(l -> names.add(l.getAsJsonObject().get("name").getAsString()));
    assertEquals(List.of("conv", "norm", "classes"), names);
  }

  @Test
  void aSelectorNamesALayerOfTheSequentialModel() throws IOException {
    Path data = ArrayTaskTest.arrayCase("sequential_cnn").resolve("data");
    CliRun run = CliRun.of("train", model().toString(), "--task", "arrays", "--data",
        data.resolve("train.npz").toString(), "--targets", data.resolve("labels.npy").toString(), "--train",
        "classes", "--epochs", "1", "--out", tmp.resolve("out").toString());
    assertEquals(0, run.exit(), run.err());
    assertTrue(run.out().contains("\"select\":\"block:classes\""), run.out());

    CliRun bad = CliRun.of("train", model().toString(), "--task", "arrays", "--data",
        data.resolve("train.npz").toString(), "--targets", data.resolve("labels.npy").toString(), "--train",
        "dense", "--epochs", "1", "--out", tmp.resolve("bad").toString());
    assertEquals(2, bad.exit(), bad.err());
    assertTrue(bad.err().contains("conv, norm, classes"), bad.err());
  }

  /**
   * A base model called as a layer (Keras's summary: {@code backbone (Functional)}, one row) keeps
   * its layers' names in the table, as {@code summary(expand_nested=True)} lists them; inspect
   * names the nested model and its layers, and a selector naming it trains exactly them.
   */
  @Test
  void aNestedModelsNameSelectsTheLayersItHolds() {
    Path dir = ArrayTaskTest.arrayCase("nested_base");
    Path model = dir.resolve("keras3_export");
    CliRun inspect = CliRun.of("inspect", model.toString());
    assertEquals(0, inspect.exit(), inspect.err());
    assertTrue(inspect.out().contains("Nested model backbone (one layer in Keras's summary, 128 params): conv, norm;"
        + " naming it selects them all"), inspect.out());
    CliRun json = CliRun.of("inspect", model.toString(), "--json");
    assertEquals("{\"backbone\":[\"conv\",\"norm\"]}", JsonParser.parseString(json.out()).getAsJsonObject()
        .get("nested_models").toString());

    Path out = tmp.resolve("backbone");
    CliRun run = CliRun.of("train", model.toString(), "--task", "arrays", "--data",
        dir.resolve("data/train.npz").toString(), "--targets", dir.resolve("data/labels.npy").toString(), "--train",
        "backbone", "--epochs", "1", "--out", out.toString());
    assertEquals(0, run.exit(), run.err());
    try (org.finetune.model.KerasSavedModel base = org.finetune.model.KerasSavedModel.open(model);
        org.finetune.model.KerasSavedModel trained = org.finetune.model.KerasSavedModel.open(out)) {
      for (String v : List.of("conv/kernel", "norm/gamma")) {
        assertTrue(!java.util.Arrays.equals(ArrayTaskTest.value(base, v), ArrayTaskTest.value(trained, v)), v);
      }
      assertTrue(java.util.Arrays.equals(ArrayTaskTest.value(base, "classes/kernel"),
          ArrayTaskTest.value(trained, "classes/kernel")), "classes/kernel is not in backbone: it stays");
    }

    CliRun bad = CliRun.of("train", model.toString(), "--task", "arrays", "--data",
        dir.resolve("data/train.npz").toString(), "--targets", dir.resolve("data/labels.npy").toString(), "--train",
        "base", "--epochs", "1", "--out", tmp.resolve("bad").toString());
    assertEquals(2, bad.exit(), bad.err());
    assertTrue(bad.err().contains("layers with weights: conv, norm, classes; models nested in it: backbone"),
        bad.err());
  }
}
