package org.finetune.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.Gson;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.finetune.data.NpyArray;
import org.finetune.export.ExportTest;
import org.finetune.model.KerasSavedModel;
import org.finetune.testing.Fixture;
import org.finetune.testing.Python;
import org.finetune.testing.TreeDigest;
import org.finetune.text.Gpt2Tokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code finetune train --task causal-lm} and {@code finetune generate} on the small GPT-2. */
class LanguageModelCommandTest {
  private static final String SMALL = "generated/gpt2_small/keras3_export";

  @TempDir
  Path tmp;

  /** Documents of a small, repetitive language: learnable in a few steps. */
  static Path corpus(Path dir, int documents, long seed) throws IOException {
    Files.createDirectories(dir);
    String[] subjects = {"The licensee", "The licensor", "Each party", "The recipient", "Any contributor"};
    String[] verbs = {"shall retain", "may distribute", "must include", "shall not remove", "may modify"};
    String[] objects = {"the copyright notice", "this license", "the source code", "all warranties", "the work"};
    Random r = new Random(seed);
    for (int d = 0; d < documents; d++) {
      StringBuilder text = new StringBuilder();
      for (int s = 0; s < 30; s++) {
        text.append(subjects[r.nextInt(5)]).append(' ').append(verbs[r.nextInt(5)]).append(' ')
            .append(objects[r.nextInt(5)]).append(". ");
      }
      Files.writeString(dir.resolve(String.format("doc%02d.txt", d)), text.toString().trim() + "\n");
    }
    return dir;
  }

  @Test
  void trainsWithGradualUnfreezingReportsPerplexityAndExportsWhatPythonReloads() throws IOException {
    Path data = corpus(tmp.resolve("text"), 10, 3);
    Path model = Fixture.of(SMALL).model();
    String before = TreeDigest.of(model);
    Path out = tmp.resolve("export");
    CliRun run = CliRun.of("train", model.toString(), "--task", "causal-lm", "--data", data.toString(), "--seq-len",
        "32", "--batch-size", "4", "--epochs", "3", "--unfreeze", "gradual:1", "--lr", "0.003", "--checkpoints",
        tmp.resolve("ckpt").toString(), "--history", tmp.resolve("history.csv").toString(), "--tensorboard",
        tmp.resolve("logs").toString(), "--out", out.toString());
    assertEquals(ExitCode.OK, run.exit(), run.err() + run.out());
    assertTrue(run.out().contains("causal LM, 2 transformer layers, 128 positions"), run.out());
    assertTrue(run.out().contains("9 documents") && run.out().contains("1 documents"), run.out());
    assertTrue(run.out().contains("\"layers:layer_norm,transformer_layer_1\""), "groups in the plan: " + run.out());
    assertTrue(run.out().contains("Epoch 3/3") && run.out().contains("perplexity"), run.out());
    // Gradual unfreezing from the top: the last layer and final norm, + layer 0, + the embeddings.
    List<Integer> training = run.out().lines().filter(l -> l.startsWith("Epoch ")).map(
        l -> Integer.parseInt(l.replaceAll(".*, (\\d+) variables training.*", "$1"))).toList();
    assertEquals(List.of(18, 34, 36), training, run.out());
    List<String> history = Files.readAllLines(tmp.resolve("history.csv"));
    List<String> header = List.of(history.get(0).split(","));
    int valPpl = header.indexOf("val_perplexity");
    int valLoss = header.indexOf("val_loss");
    assertTrue(valPpl >= 0 && valLoss >= 0, history.get(0));
    double first = Double.parseDouble(history.get(1).split(",")[valLoss]);
    double last = Double.parseDouble(history.get(3).split(",")[valLoss]);
    assertTrue(last < first - 0.5, "validation loss falls: " + first + " -> " + last);
    assertEquals(Math.exp(last), Double.parseDouble(history.get(3).split(",")[valPpl]), 1e-6 * Math.exp(last),
        "perplexity is exp of the token-weighted loss");
    assertEquals(before, TreeDigest.of(model), "the base model is only read");

    // The export: same signature; Python computes what Java computes.
    double d = pythonReloadsWithJavasLogits(out, SMALL, tmp);
    System.out.printf("small GPT-2 causal-LM export: Python vs Java %.3g%n", d);

    // evaluate --task causal-lm: the export's perplexity on the text is far below the base model's.
    double base = perplexity(CliRun.of("evaluate", model.toString(), "--task", "causal-lm", "--data", data.toString(),
        "--seq-len", "32"));
    double tuned = perplexity(CliRun.of("evaluate", out.toString(), "--task", "causal-lm", "--data", data.toString(),
        "--seq-len", "32"));
    assertTrue(base > 10_000 && tuned < base / 3, base + " -> " + tuned);

    // Resume from the last checkpoint with one more epoch.
    CliRun more = CliRun.of("train", model.toString(), "--task", "causal-lm", "--data", data.toString(), "--seq-len",
        "32", "--batch-size", "4", "--epochs", "4", "--unfreeze", "gradual:1", "--lr", "0.003", "--resume",
        tmp.resolve("ckpt").resolve("last").toString());
    assertEquals(ExitCode.OK, more.exit(), more.err() + more.out());
    assertTrue(more.out().contains("Resuming from") && more.out().contains("Epoch 4/4"), more.out());
  }

  /** Token inputs (one row padded) through the export in Java and in Python; their worst relative difference. */
  static double pythonReloadsWithJavasLogits(Path export, String id, Path tmp) throws IOException {
    Map<String, NpyArray> inputs = Map.of(
        "token_ids", NpyArray.ofInts(new long[] {2, 6}, new int[] {464, 8240, 1453, 2074, 262, 6634, 50256, 40, 716,
            257, 0, 0}),
        "padding_mask", NpyArray.ofInts(new long[] {2, 6}, new int[] {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0}));
    NpyArray java;
    try (KerasSavedModel exported = KerasSavedModel.open(export)) {
      java = ExportTest.signatureOutputs(exported, inputs).get("output_0");
    }
    Path check = tmp.resolve("python");
    new ExportTest().withTmp(tmp).check(export, inputs, check, false);
    return ExportTest.compareOutputs(id, Map.of("output_0", java), check, 2);
  }

  private static double perplexity(CliRun run) {
    assertEquals(ExitCode.OK, run.exit(), run.err() + run.out());
    String line = run.out().lines().filter(l -> l.contains("perplexity")).findFirst().orElseThrow();
    return Double.parseDouble(line.replaceAll(".*perplexity ([0-9.]+),.*", "$1"));
  }

  @Test
  void invalidUtf8IsNamedAndStrictMakesItFatal() throws IOException {
    Path data = corpus(tmp.resolve("text"), 4, 5);
    Path bad = data.resolve("latin1.txt");
    Files.write(bad, "Licen\u00e7a".getBytes(StandardCharsets.ISO_8859_1));
    Path model = Fixture.of(SMALL).model();
    CliRun lenient = CliRun.of("train", model.toString(), "--task", "causal-lm", "--data", data.toString(),
        "--seq-len", "16", "--epochs", "1", "--val-split", "0");
    assertEquals(ExitCode.OK, lenient.exit(), lenient.err() + lenient.out());
    assertTrue(lenient.err().contains(bad + ": invalid UTF-8 at byte 5; replaced by U+FFFD"), lenient.err());
    CliRun strict = CliRun.of("train", model.toString(), "--task", "causal-lm", "--data", data.toString(),
        "--seq-len", "16", "--epochs", "1", "--strict");
    assertEquals(ExitCode.BAD_INPUT, strict.exit(), strict.err() + strict.out());
    assertTrue(strict.err().contains(bad + ": invalid UTF-8 at byte 5"), strict.err());
    CliRun tooLong = CliRun.of("train", model.toString(), "--task", "causal-lm", "--data", data.toString(),
        "--seq-len", "129");
    assertEquals(ExitCode.BAD_INPUT, tooLong.exit());
    assertTrue(tooLong.err().contains("exceeds the model's 128 positions"), tooLong.err());
    CliRun image = CliRun.of("train", Fixture.of("vgg16_small/keras3_export").model().toString(), "--task",
        "causal-lm", "--data", data.toString());
    assertEquals(ExitCode.BAD_INPUT, image.exit());
    assertTrue(image.err().contains("takes token_ids and padding_mask"), image.err());
  }

  @Test
  void generateStreamsTheGreedyContinuationKerasHubProduces() {
    Fixture f = Fixture.of(SMALL);
    String prompt = "The licensee shall";
    int[] ids = Gpt2Tokenizer.get().encode(prompt);
    CliRun run = CliRun.of("generate", "--model", f.model().toString(), "--prompt", prompt, "--max-new-tokens", "12",
        "--ids");
    assertEquals(ExitCode.OK, run.exit(), run.err() + run.out());
    String reference = Python.runWithInput("reference_generate.py", new Gson().toJson(new int[][] {ids}), "--model",
        f.root().getParent().resolve("keras").resolve("model.keras").toString(), "--max-new", "12");
    int[] expected = new Gson().fromJson(reference.trim(), int[][].class)[0];
    String idsLine = run.out().lines().filter(l -> l.startsWith("ids: ")).findFirst().orElseThrow();
    int[] actual = Arrays.stream(idsLine.substring(6, idsLine.length() - 1).split(", ")).mapToInt(Integer::parseInt)
        .toArray();
    List<Integer> cut = new ArrayList<>();
    for (int e : expected) {
      cut.add(e);
      if (e == Gpt2Tokenizer.END_OF_TEXT) {
        break;
      }
    }
    assertArrayEquals(cut.stream().mapToInt(Integer::intValue).toArray(), actual);
    assertTrue(run.out().startsWith(prompt + Gpt2Tokenizer.get().decode(Arrays.stream(actual)
        .filter(t -> t != Gpt2Tokenizer.END_OF_TEXT).toArray())), run.out());
    assertTrue(run.err().contains("tokens/s"), run.err());
    CliRun bad = CliRun.of("generate", "--model", f.model().toString(), "--prompt", "x", "--top-p", "0");
    assertEquals(ExitCode.BAD_INPUT, bad.exit());
    assertTrue(bad.err().contains("top-p"), bad.err());
  }
}
