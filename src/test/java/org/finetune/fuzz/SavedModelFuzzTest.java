package org.finetune.fuzz;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import org.finetune.cli.Cli;
import org.finetune.savedmodel.CheckpointIndex;
import org.finetune.savedmodel.CheckpointKeys;
import org.finetune.savedmodel.InvalidModelException;
import org.finetune.savedmodel.SavedModelDirectory;
import org.finetune.savedmodel.SavedModelInspector;
import org.finetune.savedmodel.UnsafeOps;
import org.finetune.testing.Fixture;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;

/**
 * Fuzz targets over reading a SavedModel as data: the bytes of {@code saved_model.pb} and of
 * {@code variables/variables.index}, each written into a copy of a small Keras-written fixture.
 * Whatever the bytes, the readers either succeed or throw {@link InvalidModelException} with a
 * one-line message (what the CLI turns into exit code 2); any other exception, a hang or an
 * out-of-memory error is a finding. Nothing here starts the TensorFlow runtime.
 *
 * <p>Without {@code JAZZER_FUZZ} these run once per seed in {@code SavedModelFuzzTestInputs/}
 * (real files plus every input fuzzing found); {@code scripts/fuzz} runs them as a fuzzer.
 */
class SavedModelFuzzTest {
  @TempDir
  static Path work;

  /** One copy of the fixture per target, so that neither sees the other's last input. */
  private static Path pbModel;

  private static Path indexModel;

  /** A tf_keras export: an object graph, concrete functions, keras_metadata.pb and a one-shard checkpoint. */
  @BeforeAll
  static void copyFixture() throws IOException {
    pbModel = copyOfFixture(work.resolve("pb"));
    indexModel = copyOfFixture(work.resolve("index"));
  }

  private static Path copyOfFixture(Path model) throws IOException {
    Path source = Fixture.of("text_embedding/tf_keras").model();
    Files.createDirectories(model.resolve("variables"));
    for (String file : new String[] {"saved_model.pb", "keras_metadata.pb", "fingerprint.pb",
        "variables/variables.index", "variables/variables.data-00000-of-00001"}) {
      Files.copy(source.resolve(file), model.resolve(file));
    }
    return model;
  }

  /** {@code finetune inspect} and what opening a model reads before the runtime sees it. */
  @FuzzTest
  void savedModelPb(byte[] pb) throws IOException {
    Files.write(pbModel.resolve("saved_model.pb"), pb);
    try {
      SavedModelDirectory dir = SavedModelDirectory.open(pbModel, SavedModelDirectory.SERVE);
      SavedModelInspector.inspect(dir, Optional.empty());
      UnsafeOps.audit(dir.metaGraph());
      CheckpointKeys.forCapturedHandles(dir);
    } catch (InvalidModelException e) {
      Messages.assertOneLine(e.getMessage(), e);
      return;
    }
    // Readable as data: the command renders it, as a table and as JSON, and exits 0.
    assertInspectSucceeds();
    assertInspectSucceeds("--json");
  }

  /** The checkpoint index, its check against the data shard, and the one tensor read without the runtime. */
  @FuzzTest
  void variablesIndex(byte[] index) throws IOException {
    Files.write(indexModel.resolve("variables/variables.index"), index);
    Path prefix = indexModel.resolve("variables/variables");
    try {
      CheckpointIndex read = CheckpointIndex.read(prefix);
      read.readScalarString(prefix, "_CHECKPOINTABLE_OBJECT_GRAPH");
    } catch (InvalidModelException e) {
      Messages.assertOneLine(e.getMessage(), e);
    }
  }

  private void assertInspectSucceeds(String... flags) {
    String[] args = new String[flags.length + 3];
    args[0] = "inspect";
    args[1] = pbModel.toString();
    args[2] = "--verbose";
    System.arraycopy(flags, 0, args, 3, flags.length);
    StringWriter err = new StringWriter();
    int code = new Cli().run(args, new PrintWriter(new StringWriter()), new PrintWriter(err));
    assertEquals(0, code, () -> "finetune inspect failed on a model the library reads: " + err);
  }
}
