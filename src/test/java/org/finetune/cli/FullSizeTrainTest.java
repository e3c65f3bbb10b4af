package org.finetune.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.finetune.data.NpyArray;
import org.finetune.export.ExportTest;
import org.finetune.model.KerasSavedModel;
import org.finetune.testing.Fixture;
import org.finetune.testing.Images;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Full-size VGG16 (64x64) and InceptionV3 (75x75) train two steps on an image folder through the
 * CLI, with the family's defaults (preprocessing, feature layer), export, and Python reloads the
 * export with Java's outputs.
 */
class FullSizeTrainTest {
  @TempDir
  Path tmp;

  @ParameterizedTest(name = "{0}")
  @CsvSource({"generated/vgg16/keras3_export, 64, VGG16, caffe", "generated/inception_v3/keras3_export, 75, InceptionV3, tf"})
  void twoStepsThroughTheCliThenPythonReloadsTheExport(String id, int size, String family, String preprocess)
      throws IOException {
    Path data = Images.folder(tmp.resolve("data"), List.of("a", "b", "c"), 2, size, 5);
    Path out = tmp.resolve("export");
    Path model = Fixture.of(id).model();
    long start = System.nanoTime();
    CliRun run = CliRun.of("train", model.toString(), "--data", data.toString(), "--head", "--epochs", "1",
        "--batch-size", "3", "--val-split", "0", "--out", out.toString());
    double seconds = (System.nanoTime() - start) / 1e9;
    assertEquals(ExitCode.OK, run.exit(), run.err() + run.out());
    assertTrue(run.out().contains(family) && run.out().contains("preprocessing " + preprocess), run.out());
    assertTrue(run.out().contains("2/2"), "two steps: " + run.out());
    Map<String, NpyArray> inputs;
    NpyArray java;
    try (KerasSavedModel exported = KerasSavedModel.open(out)) {
      String input = exported.info().selectedSignature().inputs().get(0).key();
      inputs = Map.of(input, ExportTest.randomLike(new NpyArray("float32", new long[] {2, size, size, 3},
          new byte[2 * size * size * 3 * 4]), 3));
      java = ExportTest.signatureOutputs(exported, inputs).get("output_0");
    }
    Path check = tmp.resolve("python");
    new ExportTest().withTmp(tmp).check(out, inputs, check, false);
    double d = ExportTest.compareOutputs(id, Map.of("output_0", java), check, 1);
    System.out.printf("full-size %s: CLI train (2 steps) + export %.1f s; Python vs Java %.3g%n", family, seconds, d);
  }

  /** GPT-2 124M: two steps of two blocks of 128 tokens through the CLI, export, Python's logits. */
  @org.junit.jupiter.api.Test
  void gpt2TwoStepsAtLength128ThroughTheCliThenPythonReloadsTheExport() throws IOException {
    String id = "generated/gpt2_base/keras3_export";
    org.finetune.text.Gpt2Tokenizer tokenizer = org.finetune.text.Gpt2Tokenizer.get();
    StringBuilder text = new StringBuilder();
    java.util.Random r = new java.util.Random(11);
    String[] words = {"licence", "copyright", "holder", "shall", "grant", "the", "work", "notice", "source", "party"};
    while (tokenizer.encode(text.toString()).length < 400) {
      text.append(words[r.nextInt(words.length)]).append(r.nextInt(8) == 0 ? ". " : " ");
    }
    java.nio.file.Files.createDirectories(tmp.resolve("text"));
    java.nio.file.Files.writeString(tmp.resolve("text").resolve("doc.txt"), text.toString());
    Path out = tmp.resolve("export");
    long start = System.nanoTime();
    CliRun run = CliRun.of("train", Fixture.of(id).model().toString(), "--task", "causal-lm", "--data",
        tmp.resolve("text").toString(), "--seq-len", "128", "--batch-size", "2", "--epochs", "1", "--val-split", "0",
        "--out", out.toString());
    double seconds = (System.nanoTime() - start) / 1e9;
    assertEquals(ExitCode.OK, run.exit(), run.err() + run.out());
    assertTrue(run.out().contains("12 transformer layers, 1024 positions") && run.out().contains("2/2"), run.out());
    double d = LanguageModelCommandTest.pythonReloadsWithJavasLogits(out, id, tmp);
    String speed = run.out().lines().filter(l -> l.startsWith("Trained on")).findFirst().orElse("");
    System.out.printf("full-size GPT-2 124M: CLI train (2 steps x 2 x 128 tokens) + export %.1f s; %s; Python vs Java"
        + " %.3g%n", seconds, speed, d);
  }
}
