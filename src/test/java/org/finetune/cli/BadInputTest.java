package org.finetune.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Comparator;
import java.util.Random;
import java.util.stream.Stream;
import org.finetune.testing.Fixture;
import org.finetune.testing.TreeDigest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every kind of unusable model directory ends in exit code 2 and one line on stderr that names
 * the file at fault and what to do, with no stack trace unless --verbose.
 */
class BadInputTest {
  @TempDir
  Path tmp;

  /** A private copy of the small VGG16 Keras 3 export, for damaging. */
  private Path copyOfModel() {
    Path copy = tmp.resolve("model");
    TreeDigest.copy(Fixture.of("vgg16_small/keras3_export").model(), copy);
    return copy;
  }

  private static void assertOneLineError(CliRun run, String... mustContain) {
    assertEquals(ExitCode.BAD_INPUT, run.exit(), run.err());
    assertFalse(run.errLine().contains("\n"), "one line expected, got:\n" + run.err());
    assertFalse(run.err().contains("Exception") || run.err().contains("\tat "), "no stack trace: " + run.err());
    for (String s : mustContain) {
      assertTrue(run.err().contains(s), "stderr should contain '" + s + "': " + run.err());
    }
    assertEquals("", run.out(), "nothing on stdout");
  }

  @Test
  void exportNeedsACheckpointAndAnOutput() throws IOException {
    Path missing = tmp.resolve("no-checkpoint");
    assertOneLineError(CliRun.of("export", missing.toString(), "--out", tmp.resolve("out").toString()),
        "no checkpoint directory", missing.toString());
    Path notACheckpoint = Files.createDirectories(tmp.resolve("empty"));
    assertOneLineError(CliRun.of("export", notACheckpoint.toString(), "--out", tmp.resolve("out").toString()),
        "is not a finetune checkpoint", "plan.json is missing");
    assertOneLineError(CliRun.of("export", notACheckpoint.toString()), "--out DIR is required");
  }

  @Test
  void checkpointEveryNeedsCheckpointsAndAWholeNumberOfBatches() {
    String model = Fixture.of("vgg16_small/keras3_export").model().toString();
    assertOneLineError(CliRun.of("train", model, "--data", tmp.toString(), "--checkpoint-every", "2"),
        "--checkpoint-every needs --checkpoints DIR");
    assertOneLineError(CliRun.of("train", model, "--data", tmp.toString(), "--checkpoints", tmp.resolve("c").toString(),
        "--checkpoint-every", "0"), "--checkpoint-every takes a number of batches >= 1, got '0'");
  }

  @Test
  void missingPath() {
    Path missing = tmp.resolve("no-such-model");
    assertOneLineError(CliRun.of("inspect", missing.toString()), missing.toString(), "does not exist",
        "saved_model.pb");
  }

  @Test
  void directoryWithoutSavedModelPbListsWhatItHolds() throws IOException {
    Path dir = Files.createDirectories(tmp.resolve("photos"));
    Files.writeString(dir.resolve("cat.jpg"), "not a model");
    assertOneLineError(CliRun.of("inspect", dir.toString()), "has no saved_model.pb", "cat.jpg");
  }

  @Test
  void versionFolderLayoutPointsToTheVersion() {
    Path servingRoot = tmp.resolve("serving");
    TreeDigest.copy(Fixture.of("vgg16_small/keras3_export").model(), servingRoot.resolve("1"));
    assertOneLineError(CliRun.of("inspect", servingRoot.toString()), servingRoot.resolve("1").toString(),
        "Give that directory");
  }

  @Test
  void garbageSavedModelPb() throws IOException {
    Path model = copyOfModel();
    byte[] junk = new byte[4096];
    new Random(7).nextBytes(junk);
    Files.write(model.resolve("saved_model.pb"), junk);
    assertOneLineError(CliRun.of("inspect", model.toString()), model.resolve("saved_model.pb").toString(),
        "damaged or truncated", "export the model again");
  }

  @Test
  void truncatedSavedModelPb() throws IOException {
    Path model = copyOfModel();
    Path pb = model.resolve("saved_model.pb");
    byte[] bytes = Files.readAllBytes(pb);
    Files.write(pb, Arrays.copyOf(bytes, bytes.length / 2));
    assertOneLineError(CliRun.of("inspect", model.toString()), pb.toString(), "damaged or truncated");
  }

  @Test
  void emptySavedModelPb() throws IOException {
    Path model = copyOfModel();
    Files.write(model.resolve("saved_model.pb"), new byte[0]);
    assertOneLineError(CliRun.of("inspect", model.toString()), "saved_model.pb", "holds no MetaGraph");
  }

  @Test
  void missingVariablesDirectory() throws IOException {
    Path model = copyOfModel();
    try (Stream<Path> walk = Files.walk(model.resolve("variables"))) {
      for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
        Files.delete(p);
      }
    }
    assertOneLineError(CliRun.of("inspect", model.toString()), "variables.index is missing", "variables/");
  }

  @Test
  void truncatedVariablesData() throws IOException {
    Path model = copyOfModel();
    Path data = model.resolve("variables/variables.data-00000-of-00001");
    byte[] bytes = Files.readAllBytes(data);
    Files.write(data, Arrays.copyOf(bytes, bytes.length / 3));
    assertOneLineError(CliRun.of("inspect", model.toString()), data.toString(), "is truncated");
  }

  @Test
  void truncatedVariablesIndex() throws IOException {
    Path model = copyOfModel();
    Path index = model.resolve("variables/variables.index");
    byte[] bytes = Files.readAllBytes(index);
    Files.write(index, Arrays.copyOf(bytes, bytes.length - 20));
    assertOneLineError(CliRun.of("inspect", model.toString()), index.toString(), "not a valid checkpoint index");
  }

  @Test
  void missingDataShard() throws IOException {
    Path model = copyOfModel();
    Files.delete(model.resolve("variables/variables.data-00000-of-00001"));
    assertOneLineError(CliRun.of("predict", model.toString(), "--input", "x.npy"),
        "variables.data-00000-of-00001 is missing");
  }

  @Test
  void unknownTagListsTheTagsThatExist() {
    assertOneLineError(CliRun.of("inspect", Fixture.of("vgg16_small/keras3_export").model().toString(),
        "--tag", "train"), "no MetaGraph tagged [train]", "[serve]", "--tag");
  }

  @Test
  void unknownSignatureListsThoseThatExist() {
    assertOneLineError(CliRun.of("inspect", Fixture.of("vgg16_small/keras3_export").model().toString(),
        "--signature", "classify"), "no signature 'classify'", "serve, serving_default", "--signature");
  }

  @Test
  void unknownFlag() {
    assertOneLineError(CliRun.of("inspect", "--colour"), "--colour", "finetune inspect --help");
  }

  @Test
  void predictWithAnInputTheSignatureDoesNotHave() {
    Fixture f = Fixture.of("vgg16_small/keras3_export");
    assertOneLineError(CliRun.of("predict", f.model().toString(), "--input",
        "image=" + f.sampleFile("sample/input_keras_tensor.npy")), "no input 'image'", "keras_tensor");
  }

  @Test
  void predictWithAnArrayOfTheWrongShape() throws IOException {
    Path small = tmp.resolve("small.npy");
    new org.finetune.data.NpyArray("float32", new long[] {1, 16, 16, 3}, new byte[16 * 16 * 3 * 4]).write(small);
    assertOneLineError(CliRun.of("predict", Fixture.of("vgg16_small/keras3_export").model().toString(),
        "--input", small.toString()), "must have shape (None, 32, 32, 3)");
  }

  @Test
  void verboseAddsTheStackTrace() throws IOException {
    Path model = copyOfModel();
    Files.write(model.resolve("saved_model.pb"), new byte[] {1, 2, 3});
    CliRun run = CliRun.of("inspect", model.toString(), "--verbose");
    assertEquals(ExitCode.BAD_INPUT, run.exit());
    assertTrue(run.err().contains("\tat org.finetune."), run.err());
  }

  @Test
  void theFixtureItselfIsNeverTouched() {
    Path model = Fixture.of("vgg16_small/keras3_export").model();
    String before = TreeDigest.of(model);
    CliRun.of("inspect", model.toString(), "--signature", "nope");
    CliRun.of("predict", model.toString(), "--input", "missing.npy");
    assertEquals(before, TreeDigest.of(model));
  }
}
