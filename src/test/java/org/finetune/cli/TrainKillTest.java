package org.finetune.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import org.finetune.data.NpyArray;
import org.finetune.export.Checkpoint;
import org.finetune.model.KerasSavedModel;
import org.finetune.savedmodel.CheckpointIndex;
import org.finetune.testing.ChildCli;
import org.finetune.testing.Fixture;
import org.finetune.testing.Images;
import org.finetune.testing.TreeDigest;
import org.finetune.testing.Trees;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code finetune train} with checkpoints killed with SIGKILL at random moments, 10 times, then
 * run again with {@code --resume} (or from the start when no checkpoint was written yet): the
 * final training state (every weight, optimizer slot and the step counter, read from the last
 * checkpoint) is bit for bit the uninterrupted run's, and the export predicts exactly the same.
 * The run exercises what resuming must restore: a new head with dropout (masks seeded by the
 * step), gradual unfreezing over three stages, Adam's slots, a cosine schedule (its position is
 * the step), flips (seeded by epoch and position), and checkpoints every 2 batches, so kills land
 * mid-epoch, in a stage change and while a checkpoint is being written. A checkpoint directory
 * resume reads is never half written. Two kills land during start-up (0.3 to 1 times the time the
 * uninterrupted run took to reach its first epoch); the other eight at a random moment from the
 * start of the killed run's own first epoch to the time the uninterrupted run took from its first
 * epoch to its export (start-up time varies with the machine's load, training is what matters
 * here). A run that ends before its kill (a faster machine than the reference run saw) is checked
 * like the others but does not count: the test goes on until ten runs were killed.
 */
@Tag("serial")
class TrainKillTest {
  @TempDir
  Path tmp;

  private static final NpyArray INPUT = Images.randomInput(9);

  @Test
  void aKilledRunResumesToTheUninterruptedRunsWeightsBitForBit() throws Exception {
    Path model = Fixture.of("vgg16_small/keras3_export").model();
    String modelDigest = TreeDigest.of(model);
    Path data = Images.folder(tmp.resolve("images"), List.of("a", "b", "c"), 8, 32, 3);

    Path refDir = tmp.resolve("reference");
    ChildCli reference = ChildCli.start(args(model, data, refDir));
    assertEquals(ExitCode.OK, reference.await(300), reference.output());
    double duration = reference.elapsed();
    double firstEpoch = reference.lines().stream().filter(l -> l.text().startsWith("Epoch 1/")).findFirst()
        .orElseThrow(() -> new AssertionError(reference.output())).seconds();
    double exportedAt = reference.lines().stream().filter(l -> l.text().startsWith("Exported to")).findFirst()
        .orElseThrow(() -> new AssertionError(reference.output())).seconds();
    Map<String, byte[]> finalState = state(refDir.resolve("checkpoints").resolve("last"));
    byte[] prediction = predict(refDir.resolve("out"));

    Random random = new Random(10);
    List<String> outcomes = new ArrayList<>();
    int whileCheckpointing = 0;
    int kills = 0;
    for (int trial = 0; kills < 10; trial++) {
      assertTrue(trial < 30, "ten kills within 30 runs: " + outcomes);
      Path dir = tmp.resolve("trial-" + trial);
      Path checkpoints = dir.resolve("checkpoints");
      ChildCli child = ChildCli.start(args(model, data, dir));
      double at;
      if (kills % 5 == 0 && outcomes.stream().filter(o -> o.contains("start-up")).count() < 2) {
        // During start-up: no checkpoint yet, the rerun starts from the beginning.
        at = (0.3 + 0.7 * random.nextDouble()) * firstEpoch;
      } else {
        // From the first epoch's start to where the reference run exported, timed from this run's own
        // first epoch since start-up time varies with the machine's load.
        double delay = random.nextDouble() * (exportedAt - firstEpoch);
        while (child.alive() && child.lines().stream().noneMatch(l -> l.text().startsWith("Epoch 1/"))) {
          Thread.sleep(5);
        }
        at = child.elapsed() + delay;
      }
      child.sleepUntil(at);
      boolean killed = child.kill();
      if (killed) {
        kills++;
      }
      List<String> left = Trees.names(checkpoints);
      String epochSeen = child.lines().stream().map(ChildCli.Line::text).filter(t -> t.startsWith("Epoch "))
          .reduce((a, b) -> b).map(t -> t.split(" ")[1]).orElse("start-up");
      String context = "trial " + trial + (killed ? String.format(Locale.ROOT, " (killed at %.2f s, epoch %s)", at,
          epochSeen) : " (ended by itself)") + ": checkpoints " + left + "\n" + child.output();
      if (!killed) {
        assertEquals(ExitCode.OK, child.exitCode(), context);
      }
      // A killed save leaves its unfinished copy (.last.tmp-PID-*) or the previous one moved aside (.last.old-PID-*).
      if (left.stream().anyMatch(n -> n.contains(".tmp-" + child.pid() + "-") || n.contains(".old-" + child.pid() + "-"))) {
        whileCheckpointing++;
      }
      boolean exported = Files.exists(dir.resolve("out"));
      if (exported) {
        assertArrayEquals(prediction, predict(dir.resolve("out")), "an export is complete: " + context);
      }

      // What resume reads is a whole checkpoint (recover() first puts back one moved aside).
      List<String> again = new ArrayList<>(List.of(args(model, data, dir)));
      again.set(again.indexOf(dir.resolve("out").toString()), dir.resolve("resumed").toString());
      String outcome;
      if (Checkpoint.recover(checkpoints.resolve("last"))) {
        Checkpoint.Info info = Checkpoint.read(checkpoints.resolve("last"));
        int epoch = info.extra().get("epoch").getAsInt();
        int batch = info.extra().get("batch").getAsInt();
        outcome = "epoch " + epochSeen + " -> resumed at epoch " + (epoch + 1) + " batch " + batch + " (step "
            + info.iterations() + ")";
        again.addAll(List.of("--resume", checkpoints.resolve("last").toString()));
      } else {
        outcome = "epoch " + epochSeen + " -> no checkpoint yet, from the start";
      }
      outcomes.add((killed ? "" : "not killed: ") + outcome + (exported ? ", its export complete" : ""));
      CliRun resumed = CliRun.of(again.toArray(String[]::new));
      assertEquals(ExitCode.OK, resumed.exit(), context + "\nresumed:\n" + resumed.err() + resumed.out());

      Map<String, byte[]> state = state(checkpoints.resolve("last"));
      assertEquals(finalState.keySet(), state.keySet(), context);
      for (String key : finalState.keySet()) {
        assertArrayEquals(finalState.get(key), state.get(key), key + " bit for bit after " + outcome + ": " + context);
      }
      assertArrayEquals(prediction, predict(dir.resolve("resumed")), "the export after " + outcome);
      assertEquals(modelDigest, TreeDigest.of(model), "the base model is only read: " + context);
    }
    System.out.printf(Locale.ROOT, "TrainKillTest: uninterrupted %.2f s, first epoch at %.2f s, %d state tensors;"
        + " %d runs for 10 kills;"
        + " %d kills while a checkpoint was being written; trials:%n  %s%n", duration, firstEpoch, finalState.size(),
        outcomes.size(),
        whileCheckpointing, String.join("\n  ", outcomes));
    assertTrue(outcomes.stream().anyMatch(o -> o.contains("resumed at")), "some runs resumed: " + outcomes);
  }

  /** The command line of every run, with {@code dir}/checkpoints and {@code dir}/out. */
  private static String[] args(Path model, Path data, Path dir) {
    return new String[] {"train", model.toString(), "--data", data.toString(), "--head", "--features-at",
        "block3_pool", "--hidden", "8", "--dropout", "0.2", "--unfreeze", "gradual:1", "--groups", "block3,block2",
        "--flip", "--schedule", "cosine", "--epochs", "3", "--batch-size", "4", "--val-split", "0.25", "--seed", "7",
        "--checkpoints", dir.resolve("checkpoints").toString(), "--checkpoint-every", "2",
        "--out", dir.resolve("out").toString()};
  }

  /** Every tensor of a checkpoint's variables, as the bytes stored. */
  private static Map<String, byte[]> state(Path checkpoint) throws Exception {
    Path prefix = checkpoint.resolve("variables").resolve("variables");
    CheckpointIndex index = CheckpointIndex.read(prefix);
    assertEquals(1, index.header().getNumShards());
    byte[] shard = Files.readAllBytes(prefix.resolveSibling("variables.data-00000-of-00001"));
    Map<String, byte[]> out = new LinkedHashMap<>();
    index.entries().forEach((key, e) -> {
      if (!key.isEmpty()) {
        out.put(key, java.util.Arrays.copyOfRange(shard, (int) e.getOffset(), (int) (e.getOffset() + e.getSize())));
      }
    });
    return out;
  }

  private static byte[] predict(Path export) {
    try (KerasSavedModel m = KerasSavedModel.open(export)) {
      String input = m.info().selectedSignature().inputs().get(0).key();
      return m.predictArrays(m.info().signature(), Map.of(input, INPUT)).values().iterator().next().data();
    }
  }
}
