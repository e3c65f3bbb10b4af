package org.finetune.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.finetune.testing.Fixture;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** finetune check on every fixture and export path. */
class CheckCommandTest {
  static Stream<Fixture> fixtures() {
    return Fixture.all().filter(f -> !f.id().contains("gpt2_base"));
  }

  @ParameterizedTest
  @MethodSource("fixtures")
  void everyFixtureCanBeFineTunedThroughout(Fixture fixture) {
    CliRun run = CliRun.of("check", fixture.model().toString());
    System.out.println(run.out());
    assertEquals(ExitCode.OK, run.exit(), run.out() + run.err());
    assertTrue(run.out().contains("Layers that cannot: none"), run.out());
    Matcher m = Pattern.compile("loss ([0-9.e+-]+) -> ([0-9.e+-]+)").matcher(run.out());
    assertTrue(m.find(), run.out());
    assertTrue(Double.parseDouble(m.group(2)) < Double.parseDouble(m.group(1)), "one step lowers the loss: " + m.group());
  }

  /**
   * String inputs: check draws text from the model's own lookup tables (a TextVectorization's
   * adapted vocabulary, joined into several words since it splits its text; a StringLookup's words
   * one at a time), so that the examples reach the embeddings' rows rather than only the
   * out-of-vocabulary row; or takes the examples it is given.
   */
  @Test
  void stringInputsTakeWordsFromTheModelsOwnVocabularies(@org.junit.jupiter.api.io.TempDir java.nio.file.Path tmp)
      throws java.io.IOException {
    java.nio.file.Path dir = ArrayTaskTest.arrayCase("text_lookup");
    CliRun run = CliRun.of("check", dir.resolve("keras3_export").toString());
    assertEquals(ExitCode.OK, run.exit(), run.out() + run.err());
    assertTrue(run.out().contains("text input 'colour': one word each, drawn from the 3 of the lookup table it reaches\n"
        + "text input 'text': 1 to 8 words each, drawn from the 14 of the lookup table it reaches"), run.out());
    assertTrue(run.out().contains("Layers that can be fine-tuned (3): words, colours, classes\nLayers that cannot:"
        + " none"), run.out());
    assertTrue(run.out().contains("Verdict: can be fine-tuned"), run.out());

    java.util.List<String> args = new java.util.ArrayList<>(java.util.List.of("check",
        dir.resolve("keras3_export").toString()));
    for (String input : java.util.List.of("text", "colour")) {
      org.finetune.data.NpyArray a = org.finetune.data.ArrayTable.read(dir.resolve("data/train.npz"), input)
          .get(input).all().rows(new int[] {0, 1, 2, 3});
      java.nio.file.Path npy = tmp.resolve(input + ".npy");
      a.write(npy);
      args.addAll(java.util.List.of("--input", input + "=" + npy));
    }
    CliRun given = CliRun.of(args.toArray(String[]::new));
    assertEquals(ExitCode.OK, given.exit(), given.out() + given.err());
    assertTrue(!given.out().contains("text input"), given.out());
    assertTrue(given.out().contains("Verdict: can be fine-tuned"), given.out());
  }

  static Stream<String> families() throws java.io.IOException {
    try (Stream<java.nio.file.Path> dirs = java.nio.file.Files.list(FAMILIES)) {
      return dirs.map(d -> d.getFileName().toString()).sorted().toList().stream();
    }
  }

  static final java.nio.file.Path FAMILIES = Fixture.projectRoot().resolve("savedmodels/generated/families");

  /**
   * One random-weight model per keras.applications family (scripts/make_family_models.py):
   * gradients reach every layer with weights that Keras counts, and a step keeps the loss finite.
   * (At 0.01 some of these models' random-input loss goes to NaN: check then tries shorter steps.)
   */
  @ParameterizedTest
  @MethodSource("families")
  void everyApplicationsFamilyCanBeFineTunedThroughout(String constructor) throws java.io.IOException {
    java.nio.file.Path dir = FAMILIES.resolve(constructor);
    int layers = com.google.gson.JsonParser.parseString(java.nio.file.Files.readString(dir.resolve("keras.json")))
        .getAsJsonObject().get("weight_layers").getAsInt();
    CliRun run = CliRun.of("check", dir.resolve("keras3_export").toString());
    System.out.println(constructor + ": " + run.out().lines().filter(l -> l.startsWith("One SGD") || l.startsWith(
        "warning") || l.startsWith("Verdict")).toList());
    assertEquals(ExitCode.OK, run.exit(), run.out() + run.err());
    assertTrue(run.out().contains("Layers that cannot: none"), run.out());
    assertTrue(run.out().contains("Verdict: can be fine-tuned: gradients reach all " + layers + " layers with weights"),
        run.out());
  }

  /** A model with two outputs steps on both together, each with its own loss. */
  @Test
  void twoOutputsTrainTogether() {
    CliRun run = CliRun.of("check", ArrayTaskTest.arrayCase("image_tabular").resolve("keras3_export").toString());
    System.out.println(run.out());
    assertEquals(ExitCode.OK, run.exit(), run.out() + run.err());
    assertTrue(run.out().contains("Layers that cannot: none"), run.out());
    Matcher m = Pattern.compile("with sparse_categorical_crossentropy on kind \\+ mean_squared_error on size on random"
        + " data: loss ([0-9.e+-]+) -> ([0-9.e+-]+)").matcher(run.out());
    assertTrue(m.find(), run.out());
    assertTrue(Double.parseDouble(m.group(2)) < Double.parseDouble(m.group(1)), "one step lowers the loss: " + m.group());
  }

  @Test
  void fullSizeGpt2CanBeFineTunedThroughout() {
    CliRun run = CliRun.of("check", Fixture.of("generated/gpt2_base/keras3_export").model().toString());
    System.out.println(run.out());
    assertEquals(ExitCode.OK, run.exit(), run.out() + run.err());
  }

  /** The model saved its custom gradient's function, so the layers behind the IdentityN train through it. */
  @Test
  void aSavedCustomGradientLetsTheLayersBehindItTrain() {
    CliRun run = CliRun.of("check", Fixture.graphs().filter(f -> f.id().endsWith("custom_gradient")).findFirst()
        .orElseThrow().model().toString());
    System.out.println(run.out());
    assertEquals(ExitCode.OK, run.exit(), run.out() + run.err());
    assertTrue(run.out().contains("Layers that can be fine-tuned (2): kernel, bias"), run.out());
  }

  /**
   * A masked GRU over embedded ids: the loop is unrolled, so every layer trains; the random ids
   * check makes stay below the embedding's 30 rows (ids up to 99 failed the forward pass); and
   * inspect's static analysis agrees with check.
   */
  @Test
  void aRecurrentModelOverIdsTrainsThroughout() {
    String model = ArrayTaskTest.arrayCase("gru_classifier").resolve("keras3_export").toString();
    CliRun run = CliRun.of("check", model);
    System.out.println(run.out());
    assertEquals(ExitCode.OK, run.exit(), run.out() + run.err());
    assertTrue(run.out().contains("Layers that can be fine-tuned (3): embedding, gru, classes"), run.out());
    assertTrue(run.out().contains("Layers that cannot: none"), run.out());
    assertTrue(run.out().contains("Verdict: can be fine-tuned: gradients reach all 3 layers with weights, and the step is"
        + " finite"), run.out());
    CliRun inspect = CliRun.of("inspect", model);
    assertEquals(ExitCode.OK, inspect.exit(), inspect.err());
    assertTrue(inspect.out().contains("Cannot be trained:\n  nothing: every trainable variable reaches the outputs"),
        inspect.out());
  }

  /**
   * Real examples instead of random ones: int64 ids as numpy saves them, cast to the signature's
   * int32; an array of the wrong shape is bad input (exit 2) naming the flag.
   */
  @Test
  void givenExamplesAreCheckedOnAndAWrongShapeIsRefused(@org.junit.jupiter.api.io.TempDir java.nio.file.Path tmp)
      throws java.io.IOException {
    java.nio.file.Path dir = ArrayTaskTest.arrayCase("gru_classifier");
    org.finetune.data.NpyArray tokens = org.finetune.data.ArrayTable.read(dir.resolve("data/train.npz"), "tokens")
        .get("tokens").all().rows(new int[] {0, 1, 2, 3, 4, 5, 6, 7});
    java.nio.file.Path file = tmp.resolve("tokens.npy");
    tokens.write(file);
    assertEquals("int64", tokens.dtype());
    CliRun run = CliRun.of("check", dir.resolve("keras3_export").toString(), "--input", "tokens=" + file);
    assertEquals(ExitCode.OK, run.exit(), run.out() + run.err());
    assertTrue(run.out().contains("with sparse_categorical_crossentropy on the given data"), run.out());
    CliRun wrong = CliRun.of("check", dir.resolve("keras3_export").toString(), "--input",
        dir.resolve("data/labels.npy").toString());
    assertEquals(ExitCode.BAD_INPUT, wrong.exit(), wrong.out() + wrong.err());
    assertEquals("finetune check: --input tokens: the array is [96] and the input takes (None, 15); give examples of"
        + " that shape", wrong.errLine());
  }
}
