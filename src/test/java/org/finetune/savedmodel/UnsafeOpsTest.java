package org.finetune.savedmodel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;
import org.finetune.graph.OpDefs;
import org.finetune.hint.Setting;
import org.finetune.model.KerasSavedModel;
import org.finetune.testing.Fixture;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.tensorflow.TensorFlow;
import org.tensorflow.proto.OpDef;

/**
 * The unsafe-op audit on models crafted to misbehave ({@code scripts/make_untrusted_models.py},
 * {@code testdata/untrusted/}) and on every fixture we trust.
 */
@Tag("serial")
class UnsafeOpsTest {
  private static final Path MARKER = Path.of("/tmp/finetune-untrusted-init-op-wrote-this.txt");

  /** Registry ops whose file- or pattern-named inputs are strings they only compute with. */
  private static final Set<String> HARMLESS = Set.of("RegexFullMatch", "RegexReplace", "StaticRegexFullMatch",
      "StaticRegexReplace", "ShardedFilename",
      "ShardedFilespec");

  private static Path untrusted(String name) {
    return Fixture.projectRoot().resolve("testdata").resolve("untrusted").resolve(name);
  }

  @Test
  void everyRefusedOpIsInTheRegistryAndEveryRegistryOpNamingFilesIsClassified() {
    for (String op : UnsafeOps.REFUSED.keySet()) {
      assertTrue(OpDefs.runtime().find(op).isPresent(), op + " is not a TensorFlow 2.18 op");
    }
    Set<String> fileish = Set.of("filename", "filenames", "file_pattern", "pattern", "prefix", "basename", "logdir",
        "db_uri", "data_source_name", "address", "file_path", "path", "output_stream", "debug_urls");
    List<String> unclassified = new ArrayList<>();
    for (OpDef def : TensorFlow.registeredOpList().getOpList()) {
      boolean names = def.getInputArgList().stream().anyMatch(a -> fileish.contains(a.getName()))
          || def.getAttrList().stream().anyMatch(a -> fileish.contains(a.getName()));
      if (names && !UnsafeOps.REFUSED.containsKey(def.getName()) && !HARMLESS.contains(def.getName())) {
        unclassified.add(def.getName());
      }
    }
    assertEquals(List.of(), unclassified, "ops that name files or addresses, neither refused nor known harmless");
  }

  @ParameterizedTest(name = "{0}")
  @CsvSource(delimiter = '|', value = {
      "init_writes_file|WriteFile (reads or writes files) in the graph",
      "serving_reads_file|ReadFile (reads or writes files) in function __inference_",
      "py_function|EagerPyFunc (runs Python code) in function __inference_",
      "saver_op_in_serving|SaveV2 (reads or writes files) in function __inference_",
      "asset_escapes|asset '../../outside.txt' outside assets/"})
  void untrustedModelsAreRefusedBeforeTheRuntimeSeesThem(String name, String expected) throws IOException {
    Files.deleteIfExists(MARKER);
    InvalidModelException e = assertThrows(InvalidModelException.class,
        () -> KerasSavedModel.open(untrusted(name)).close());
    assertTrue(e.getMessage().contains(expected), e.getMessage());
    assertEquals(Setting.UNSAFE_OPS, e.setting(), "the fix concerns trusting the model");
    assertTrue(e.getMessage().contains("allowingUnsafeOps(true)") && !e.getMessage().contains("--"), e.getMessage());
    assertFalse(Files.exists(MARKER), "nothing ran");
  }

  @Test
  void theInitOpThreatIsRealWhenTheModelIsTrusted() throws IOException {
    Files.deleteIfExists(MARKER);
    try (KerasSavedModel m = KerasSavedModel.loader(untrusted("init_writes_file")).allowingUnsafeOps(true).load()) {
      assertTrue(Files.exists(MARKER), "loading a trusted model ran its init op");
    } finally {
      Files.deleteIfExists(MARKER);
    }
  }

  @Test
  void everyFixtureWeTrustAuditsClean() {
    List<Path> models = new ArrayList<>();
    Fixture.all().forEach(f -> models.add(f.model()));
    Fixture.graphs().forEach(f -> models.add(f.model()));
    models.add(Fixture.projectRoot().resolve("savedmodels/digits_vgg16/keras3_export/model"));
    models.add(untrusted("clean"));
    for (Path m : models) {
      UnsafeOps.Report r = UnsafeOps.audit(SavedModelDirectory.open(m, SavedModelDirectory.SERVE).metaGraph());
      assertTrue(r.clean(), m + ": " + r.summary());
    }
    try (Stream<Path> s = Stream.of(untrusted("clean"))) {
      s.forEach(p -> KerasSavedModel.open(p).close());
    }
  }
}
