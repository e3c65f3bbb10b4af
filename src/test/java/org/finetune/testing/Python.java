package org.finetune.testing;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs our Python scripts with the project's venv (the numerical oracle). A missing venv is a
 * failure that says how to make one, never a skip: on our machines Python is present.
 */
public final class Python {
  private Python() {}

  public static Path interpreter() {
    String configured = System.getenv("FINETUNE_PYTHON");
    Path python = configured != null ? Path.of(configured) : Fixture.projectRoot().resolve(".venv/bin/python");
    if (!Files.isExecutable(python)) {
      throw new IllegalStateException(python + " is missing: run scripts/test (or scripts/python-env), which"
          + " creates the venv with scripts/requirements.txt");
    }
    return python;
  }

  /** Runs {@code scripts/<script>} with {@code args}; returns stdout, fails with stderr on a non-zero exit. */
  public static String run(String script, String... args) {
    return runWithInput(script, null, args);
  }

  /** Like {@link #run}, with {@code input} on the script's standard input; returns stdout only. */
  public static String runWithInput(String script, String input, String... args) {
    List<String> command = new ArrayList<>();
    command.add(interpreter().toString());
    command.add(Fixture.projectRoot().resolve("scripts").resolve(script).toString());
    command.addAll(List.of(args));
    try {
      Path log = Files.createTempFile("finetune-python", ".log");
      try {
        Path errors = Files.createTempFile("finetune-python", ".err");
        ProcessBuilder pb = new ProcessBuilder(command).redirectOutput(log.toFile()).redirectError(
            input == null ? ProcessBuilder.Redirect.appendTo(log.toFile()) : ProcessBuilder.Redirect.to(errors.toFile()));
        pb.environment().put("TF_CPP_MIN_LOG_LEVEL", "2");
        pb.environment().put("CUDA_VISIBLE_DEVICES", "");
        Process p = pb.start();
        if (input != null) {
          try (java.io.OutputStream stdin = p.getOutputStream()) {
            stdin.write(input.getBytes(StandardCharsets.UTF_8));
          }
        } else {
          p.getOutputStream().close();
        }
        if (!p.waitFor(30, TimeUnit.MINUTES)) {
          p.destroyForcibly();
          throw new IllegalStateException(String.join(" ", command) + " did not finish in 30 minutes");
        }
        String output = Files.readString(log, StandardCharsets.UTF_8);
        String stderr = Files.readString(errors, StandardCharsets.UTF_8);
        Files.deleteIfExists(errors);
        if (p.exitValue() != 0) {
          throw new IllegalStateException(String.join(" ", command) + " failed (exit " + p.exitValue() + "):\n"
              + output + stderr);
        }
        return output;
      } finally {
        Files.deleteIfExists(log);
      }
    } catch (IOException e) {
      throw new IllegalStateException("cannot run " + command + ": " + e.getMessage(), e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while running " + command, e);
    }
  }
}
