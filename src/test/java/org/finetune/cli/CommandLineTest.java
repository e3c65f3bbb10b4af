package org.finetune.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.file.Path;
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

  @Test
  void demoFineTunesTheBundledDigitsModelComparesWithScratchAndExports(@org.junit.jupiter.api.io.TempDir Path tmp) {
    String previous = System.getProperty("finetune.home");
    System.setProperty("finetune.home", Fixture.projectRoot().toString());
    try {
      Path out = tmp.resolve("demo");
      CliRun run = CliRun.of("demo", "--out", out.toString(), "--seeds", "2");
      assertEquals(ExitCode.OK, run.exit(), run.err());
      assertTrue(run.out().contains("== Budget: 3 epochs") && run.out().contains("== Budget: 6 epochs")
        && run.out().contains("== Budget: 12 epochs"), run.out());
      assertEquals(3, run.out().lines().filter(l -> l.startsWith("mean")).count(), run.out());
      assertTrue(java.nio.file.Files.isRegularFile(out.resolve("export").resolve("saved_model.pb")));
      assertTrue(java.nio.file.Files.isRegularFile(out.resolve("history.csv")));
      assertTrue(java.nio.file.Files.isRegularFile(out.resolve("curves.png")));
      assertTrue(java.nio.file.Files.isDirectory(out.resolve("logs").resolve("train")));
      run.out().lines().filter(l -> l.startsWith("mean") || l.startsWith("== Budget")).forEach(System.out::println);
    } finally {
      if (previous == null) {
        System.clearProperty("finetune.home");
      } else {
        System.setProperty("finetune.home", previous);
      }
    }
  }
}
