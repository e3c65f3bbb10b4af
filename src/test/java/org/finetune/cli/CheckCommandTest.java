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

  @Test
  void aCustomGradientLeavesTheLayersBehindItUntrainable() {
    CliRun run = CliRun.of("check", Fixture.graphs().filter(f -> f.id().endsWith("custom_gradient")).findFirst()
        .orElseThrow().model().toString());
    System.out.println(run.out());
    assertTrue(run.out().contains("IdentityN"), run.out());
    assertTrue(run.exit() == ExitCode.PARTLY || run.exit() == ExitCode.FAILED, "exit " + run.exit());
  }
}
