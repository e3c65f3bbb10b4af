package org.finetune.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import org.finetune.data.NpyArray;
import org.finetune.testing.Fixture;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class CommandLineTest {
  @ParameterizedTest
  @ValueSource(strings = {"inspect", "predict", "demo"})
  void everyCommandHasHelp(String command) {
    CliRun run = CliRun.of(command, "--help");
    assertEquals(ExitCode.OK, run.exit(), run.err());
    assertTrue(run.out().contains("usage: finetune " + command), run.out());
    assertTrue(run.out().contains("--verbose"), run.out());
  }

  @Test
  void noCommandListsTheCommandsAndExits2() {
    CliRun run = CliRun.of();
    assertEquals(ExitCode.BAD_INPUT, run.exit());
    assertTrue(run.err().contains("inspect") && run.err().contains("predict"), run.err());
  }

  @Test
  void unknownCommandNamesTheOnesThatExist() {
    CliRun run = CliRun.of("train-everything");
    assertEquals(ExitCode.BAD_INPUT, run.exit());
    assertTrue(run.err().contains("unknown command 'train-everything'") && run.err().contains("inspect"), run.err());
  }

  @Test
  void inspectTableLooksLikeKerasSummary() {
    CliRun run = CliRun.of("inspect", Fixture.of("vgg16_small/keras3_export").model().toString());
    assertEquals(ExitCode.OK, run.exit(), run.err());
    assertTrue(run.out().contains("Total params: 531,634"), run.out());
    assertTrue(run.out().contains("Trainable params: 531,634"), run.out());
    assertTrue(run.out().contains("Non-trainable params: 0"), run.out());
    assertTrue(run.out().matches("(?s).*block5_conv3\\s+kernel \\(3, 3, 64, 64\\) float32\\s+36,928\\s+yes.*"), run.out());
    assertTrue(run.out().contains("Export path: Keras 3 model.export()"), run.out());
  }

  @Test
  void inspectNamesTheModelsFamilyOrThatItHasNone() {
    CliRun vgg = CliRun.of("inspect", Fixture.of("vgg16_small/keras3_export").model().toString());
    assertTrue(vgg.out().contains("Family: VGG16; preprocessing caffe; a new head goes on block5_pool; 5 layer groups"),
        vgg.out());
    CliRun inception = CliRun.of("inspect", "--json", Fixture.of("inception_v3_small/keras3_export").model().toString());
    JsonObject family = JsonParser.parseString(inception.out()).getAsJsonObject().getAsJsonObject("family");
    assertEquals("InceptionV3", family.get("name").getAsString(), inception.out());
    assertEquals("mixed10", family.get("feature_layer").getAsString(), inception.out());
    assertEquals("tf", family.get("preprocess").getAsString(), inception.out());
    CliRun generic = CliRun.of("inspect", Fixture.of("tf1_linear/tf1").model().toString());
    assertEquals(ExitCode.OK, generic.exit(), generic.err());
    assertTrue(generic.out().contains("Family: none known"), generic.out());
  }

  @Test
  void inspectJsonCarriesTheSameTotalsAsKeras() {
    Fixture f = Fixture.of("inception_v3_small/keras3_export");
    CliRun run = CliRun.of("inspect", "--json", f.model().toString());
    assertEquals(ExitCode.OK, run.exit(), run.err());
    JsonObject json = JsonParser.parseString(run.out()).getAsJsonObject();
    assertEquals(f.expected().get("totals"), json.get("totals"));
    assertEquals("keras3_export", json.get("export_path").getAsString());
  }

  static java.util.stream.Stream<Fixture> fixtures() {
    return Fixture.all();
  }

  @ParameterizedTest
  @org.junit.jupiter.params.provider.MethodSource("fixtures")
  void inspectJsonTotalsEqualKerasForEveryFixture(Fixture fixture) {
    CliRun run = CliRun.of("inspect", "--json", fixture.model().toString());
    assertEquals(ExitCode.OK, run.exit(), run.err());
    JsonObject json = JsonParser.parseString(run.out()).getAsJsonObject();
    assertEquals(fixture.expected().get("totals"), json.get("totals"), fixture.id());
  }

  @Test
  void inspectNamesTheLayerBehindAnOpWithoutGradient() {
    // tf.cond's If: the runtime has no gradient for it, so the variables its branches read cannot train.
    Fixture f = Fixture.graphs().filter(g -> g.id().endsWith("cond")).findFirst().orElseThrow();
    CliRun run = CliRun.of("inspect", f.model().toString());
    assertEquals(ExitCode.OK, run.exit(), run.err());
    assertTrue(run.out().matches("(?s).*Cannot be trained:\\s+then_kernel, else_kernel, else_bias: behind If .*"),
        run.out());
  }

  @Test
  void inspectFindsNothingBehindACustomGradientTheModelSaved() {
    Fixture f = Fixture.graphs().filter(g -> g.id().endsWith("custom_gradient")).findFirst().orElseThrow();
    CliRun run = CliRun.of("inspect", f.model().toString());
    assertEquals(ExitCode.OK, run.exit(), run.err());
    assertTrue(run.out().contains("Cannot be trained:\n  nothing: every trainable variable reaches the outputs"),
        run.out());
  }

  @Test
  void tf1SavedModelWithoutFunctionsStillInspects() {
    CliRun run = CliRun.of("inspect", Fixture.of("tf1_linear/tf1").model().toString());
    assertEquals(ExitCode.OK, run.exit(), run.err());
    assertTrue(run.out().contains("Export path: TF1 SavedModelBuilder"), run.out());
    assertTrue(run.out().contains("Total params: 16"), run.out());
  }

  @Test
  void predictWritesOutputsThatEqualKeras(@TempDir Path out) throws IOException {
    Fixture f = Fixture.of("generated/gpt2_small/keras3_export");
    CliRun run = CliRun.of("predict", f.model().toString(),
        "--input", "token_ids=" + f.sampleFile("sample/input_token_ids.npy"),
        "--input", "padding_mask=" + f.sampleFile("sample/input_padding_mask.npy"),
        "--out", out.toString());
    assertEquals(ExitCode.OK, run.exit(), run.err());
    assertTrue(run.out().contains("output_0: float32 [2, 8, 50257]"), run.out());
    double[] keras = NpyArray.read(f.sampleFile("sample/output_output_0.npy")).toDoubles();
    double[] java = NpyArray.read(out.resolve("output_0.npy")).toDoubles();
    assertTrue(NpyArray.relativeDifference(keras, java) <= 1e-5);
  }

  /**
   * The default demo on the bundled Fashion-MNIST files: every arm of every seed and budget trains
   * (its training loss falls), the table has a row per budget with each arm and the gain over
   * training from scratch, the pictures are written, and Python loads the export and computes
   * what Java computes on held-out images. No accuracy is asserted.
   */
  @Test
  void theDefaultDemoComparesThreeArmsOnFashionImagesAndExports(@org.junit.jupiter.api.io.TempDir Path tmp)
      throws java.io.IOException {
    String previous = System.getProperty("finetune.home");
    System.setProperty("finetune.home", Fixture.projectRoot().toString());
    try {
      Path out = tmp.resolve("demo");
      CliRun run = CliRun.of("demo", "--out", out.toString());
      assertEquals(ExitCode.OK, run.exit(), run.err());
      java.util.regex.Matcher m = java.util.regex.Pattern.compile("seed (\\d), +(\\d+) epochs: (fine-tuned|feature"
          + " extraction|from scratch) +[0-9.]+% \\(learning rate [0-9e-]+; training loss ([0-9.]+) -> ([0-9.]+);")
          .matcher(run.out());
      int runs = 0;
      while (m.find()) {
        runs++;
        assertTrue(Double.parseDouble(m.group(5)) < Double.parseDouble(m.group(4)), "it trained: " + m.group());
      }
      assertEquals(DemoCommand.SEEDS * 3 * DemoCommand.BUDGETS.size(), runs, run.out());
      List<String> lines = run.out().lines().toList();
      int header = lines.indexOf("epochs   fine-tuned           feature extraction   from scratch         fine-tuned"
          + " minus from scratch");
      assertTrue(header > 0, run.out());
      for (int b = 0; b < DemoCommand.BUDGETS.size(); b++) {
        assertTrue(lines.get(header + 1 + b).matches(DemoCommand.BUDGETS.get(b) + " +( +[0-9.]+% ± +[0-9.]+){3} +[-+]"
            + "[0-9.]+ points \\(95%: [-+][0-9.]+ to [-+][0-9.]+\\)"), lines.get(header + 1 + b));
      }
      assertTrue(run.out().contains("Time to come within 2 points of its own best (12-epoch runs"), run.out());
      for (String file : List.of("export/saved_model.pb", "history.csv", "curves.png", "comparison_6.png",
          "comparison_12.png", "confusion.png")) {
        assertTrue(java.nio.file.Files.isRegularFile(out.resolve(file)), file);
      }
      lines.subList(header, header + 1 + DemoCommand.BUDGETS.size()).forEach(System.out::println);
      pythonLoadsTheExport(out.resolve("export"), tmp);
    } finally {
      if (previous == null) {
        System.clearProperty("finetune.home");
      } else {
        System.setProperty("finetune.home", previous);
      }
    }
  }

  /** tf.saved_model.load and TFSMLayer on the demo's export give Java's outputs on 8 held-out images. */
  private static void pythonLoadsTheExport(Path export, Path tmp) throws java.io.IOException {
    org.finetune.data.ImageFolder test = org.finetune.data.ImageFolder.scan(Fixture.projectRoot()
        .resolve(DemoCommand.FASHION_TEST));
    org.finetune.data.ImageDataset.Options options = org.finetune.data.ImageDataset.Options.of(32, 32,
        org.finetune.data.ImageOps.Preprocess.CAFFE, 8).shuffled(false);
    NpyArray images;
    try (org.finetune.data.ImageDataset data = org.finetune.data.ImageDataset.open(test.items().subList(0, 8),
        options); org.finetune.data.ImageDataset.Batches batches = data.epoch(0, 0)) {
      images = batches.next().images();
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
    java.util.Map<String, NpyArray> javaOutputs = new java.util.LinkedHashMap<>();
    String input;
    try (org.finetune.model.KerasSavedModel model = org.finetune.model.KerasSavedModel.open(export)) {
      input = model.info().selectedSignature().inputs().get(0).key();
      try (org.tensorflow.Tensor x = images.toTensor()) {
        model.predict(java.util.Map.of(input, x)).forEach((k, t) -> {
          javaOutputs.put(k, NpyArray.of(t));
          t.close();
        });
      }
    }
    Path in = tmp.resolve("images.npy");
    images.write(in);
    Path python = tmp.resolve("python");
    org.finetune.export.ExportTest.pythonLoads(export, input, in, python, tmp.resolve("check.json"));
    double worst = org.finetune.export.ExportTest.compareOutputs("demo export", javaOutputs, python, 1);
    System.out.printf("demo export: Python (tf.saved_model.load, TFSMLayer) vs Java on 8 held-out images: %.3g%n",
        worst);
    assertTrue(worst <= 1e-5, "outputs within 1e-5: " + worst);
  }
}
