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
 * can name them, and a name it does not have is bad input.
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
}
