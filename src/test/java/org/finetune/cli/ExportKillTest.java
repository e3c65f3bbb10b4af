package org.finetune.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import org.finetune.data.NpyArray;
import org.finetune.model.KerasSavedModel;
import org.finetune.testing.ChildCli;
import org.finetune.testing.Fixture;
import org.finetune.testing.Images;
import org.finetune.testing.TreeDigest;
import org.finetune.testing.Trees;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code finetune export} killed with SIGKILL at random moments, 20 times: 10 exports of a new
 * head (a graph built in Java) and 10 of the same architecture (the model's files and its own
 * saver). After every kill the output is absent or complete (it loads and predicts exactly what
 * the uninterrupted export predicts), the checkpoint and the base model are unchanged, and what a
 * killed export left beside the output is cleared by the next export. Half the kill times are
 * drawn from 0.2 to 1.1 times the uninterrupted run's duration; the writing itself is a tenth of
 * that (the JVM and TensorFlow start first), so the other half wait until the temporary
 * directory appears and then kill at a random moment up to 1.3 times the measured writing time.
 */
@Tag("serial")
class ExportKillTest {
  @TempDir
  Path tmp;

  /** Where a kill landed, judged by what it left. */
  enum Outcome { BEFORE_WRITING, WHILE_WRITING, AFTER_COMMIT }

  /** The uninterrupted export: its duration, when its temporary directory and its output appeared, what it predicts. */
  private record Reference(double seconds, double tempAt, double committedAt, byte[] prediction) {}

  private static final NpyArray INPUT = Images.randomInput(5);

  @Test
  void aKilledExportLeavesNoOutputOrACompleteOneAndNeverTouchesItsInputs() throws Exception {
    Path model = Fixture.of("vgg16_small/keras3_export").model();
    Path data = Images.folder(tmp.resolve("images"), List.of("a", "b", "c"), 4, 32, 11);
    String modelDigest = TreeDigest.of(model);
    Map<Outcome, Integer> all = new EnumMap<>(Outcome.class);
    Random random = new Random(20);
    for (String mode : List.of("new-head", "same-architecture")) {
      Path checkpoints = tmp.resolve(mode).resolve("checkpoints");
      List<String> train = mode.equals("new-head")
          ? List.of("--head", "--features-at", "block3_pool", "--hidden", "8")
          : List.of("--train", "block:block5");
      CliRun trained = CliRun.of(concat(List.of("train", model.toString(), "--data", data.toString(), "--epochs", "1",
          "--batch-size", "4", "--val-split", "0", "--checkpoints", checkpoints.toString()), train));
      assertEquals(ExitCode.OK, trained.exit(), trained.err() + trained.out());
      Path checkpoint = checkpoints.resolve("last");
      String checkpointDigest = TreeDigest.of(checkpoint);

      Reference reference = reference(checkpoint, tmp.resolve(mode).resolve("reference").resolve("model"));
      Path parent = tmp.resolve(mode).resolve("trials");
      Path target = parent.resolve("model");
      Map<Outcome, Integer> counts = new EnumMap<>(Outcome.class);
      for (int trial = 0; trial < 10; trial++) {
        double writing = reference.committedAt() - reference.tempAt();
        double uniform = (0.2 + 0.9 * random.nextDouble()) * reference.seconds();
        double inWriting = 1.3 * writing * random.nextDouble();
        ChildCli child = ChildCli.start("export", checkpoint.toString(), "--out", target.toString());
        String temp = ".model.tmp-" + child.pid() + "-";
        if (trial % 2 == 0) {
          child.sleepUntil(uniform);
        } else {
          while (child.alive() && Trees.names(parent).stream().noneMatch(n -> n.startsWith(temp))) {
            Thread.sleep(2);
          }
          child.sleepUntil(child.elapsed() + inWriting);
        }
        boolean killed = child.kill();
        String context = mode + " trial " + trial + (killed ? " (killed at " : " (ended by itself before ")
            + String.format(Locale.ROOT, "%.2f s): ", child.elapsed()) + Trees.names(parent) + "\n" + child.output();
        if (!killed) {
          assertEquals(ExitCode.OK, child.exitCode(), context);
        }
        Outcome outcome;
        if (Files.exists(target)) {
          outcome = Outcome.AFTER_COMMIT;
          assertArrayEquals(reference.prediction(), predict(target), "a complete export: " + context);
          assertTrue(Files.isRegularFile(target.resolve("assets").resolve("finetune.json")), context);
          Trees.delete(target);
        } else {
          outcome = Trees.names(parent).stream().anyMatch(n -> n.startsWith(temp)) ? Outcome.WHILE_WRITING
              : Outcome.BEFORE_WRITING;
        }
        assertTrue(Trees.names(parent).stream().allMatch(n -> n.startsWith(".model.tmp-")),
            "only unfinished copies beside the output: " + context);
        counts.merge(outcome, 1, Integer::sum);
        assertEquals(checkpointDigest, TreeDigest.of(checkpoint), "the checkpoint is only read: " + context);
        assertEquals(modelDigest, TreeDigest.of(model), "the base model is only read: " + context);
      }
      // One more export, uninterrupted, into the same place: it clears what the killed ones left.
      CliRun last = CliRun.of("export", checkpoint.toString(), "--out", target.toString());
      assertEquals(ExitCode.OK, last.exit(), last.err());
      assertEquals(List.of("model"), Trees.names(parent), "nothing left beside the output");
      assertArrayEquals(reference.prediction(), predict(target));
      System.out.printf(Locale.ROOT, "ExportKillTest %s: uninterrupted %.2f s, writing from %.2f s to %.2f s;"
          + " kills: %s%n", mode, reference.seconds(), reference.tempAt(), reference.committedAt(), counts);
      counts.forEach((k, v) -> all.merge(k, v, Integer::sum));
    }
    assertEquals(20, all.values().stream().mapToInt(Integer::intValue).sum());
    assertTrue(all.getOrDefault(Outcome.WHILE_WRITING, 0) > 0, "some kills landed while the export was being"
        + " written, or the trials tested nothing that matters: " + all);
  }

  /** Runs the export to its end in a child, watching for its temporary directory and its output. */
  private static Reference reference(Path checkpoint, Path target) throws Exception {
    Path parent = target.getParent();
    ChildCli child = ChildCli.start("export", checkpoint.toString(), "--out", target.toString());
    double tempAt = Double.NaN;
    double committedAt = Double.NaN;
    while (child.alive()) {
      List<String> names = Trees.names(parent);
      double now = child.elapsed();
      if (Double.isNaN(tempAt) && names.stream().anyMatch(n -> n.startsWith(".model.tmp-"))) {
        tempAt = now;
      }
      if (Double.isNaN(committedAt) && names.contains("model")) {
        committedAt = now;
      }
      Thread.sleep(2);
    }
    assertEquals(ExitCode.OK, child.await(60), child.output());
    double seconds = child.elapsed();
    assertFalse(Double.isNaN(tempAt) || Double.isNaN(committedAt), "saw the export being written: " + child.output());
    return new Reference(seconds, tempAt, committedAt, predict(target));
  }

  private static byte[] predict(Path export) {
    try (KerasSavedModel m = KerasSavedModel.open(export)) {
      String input = m.info().selectedSignature().inputs().get(0).key();
      return m.predictArrays(m.info().signature(), Map.of(input, INPUT)).values().iterator().next().data();
    }
  }

  private static String[] concat(List<String> a, List<String> b) {
    return java.util.stream.Stream.concat(a.stream(), b.stream()).toArray(String[]::new);
  }
}
