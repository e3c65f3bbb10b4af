package org.finetune.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.finetune.data.NpyArray;
import org.finetune.testing.Fixture;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A model whose init op writes a file: inspect names the op, predict refuses it unless trusted. */
@Tag("serial")
class UntrustedModelCommandTest {
  private static final Path MARKER = Path.of("/tmp/finetune-untrusted-init-op-wrote-this.txt");

  @Test
  void inspectNamesTheOpsAndPredictRefusesUnlessTrusted(@TempDir Path tmp) throws IOException {
    Path model = Fixture.projectRoot().resolve("testdata/untrusted/init_writes_file");
    Files.deleteIfExists(MARKER);
    CliRun inspect = CliRun.of("inspect", model.toString());
    assertEquals(ExitCode.OK, inspect.exit(), inspect.err());
    assertTrue(inspect.out().contains("Unsafe ops (loading is refused unless --allow-unsafe-ops): WriteFile"),
        inspect.out());
    CliRun json = CliRun.of("inspect", "--json", model.toString());
    assertTrue(json.out().contains("\"op\": \"WriteFile\""), json.out());
    Path input = tmp.resolve("x.npy");
    new NpyArray("float32", new long[] {1, 2}, new byte[8]).write(input);
    CliRun refused = CliRun.of("predict", model.toString(), "--input", "x=" + input);
    assertEquals(ExitCode.BAD_INPUT, refused.exit(), refused.out() + refused.err());
    assertTrue(refused.err().contains("WriteFile (reads or writes files) in the graph")
        && refused.err().contains("--allow-unsafe-ops"), refused.err());
    assertFalse(Files.exists(MARKER), "nothing ran");
    try {
      CliRun trusted = CliRun.of("predict", model.toString(), "--input", "x=" + input, "--allow-unsafe-ops");
      assertEquals(ExitCode.OK, trusted.exit(), trusted.out() + trusted.err());
      assertTrue(Files.exists(MARKER), "trusted: its init op ran");
    } finally {
      Files.deleteIfExists(MARKER);
    }
    CliRun clean = CliRun.of("inspect", Fixture.of("vgg16_small/keras3_export").model().toString());
    assertTrue(clean.out().contains("Unsafe ops: none"), clean.out());
  }
}
