package org.finetune.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.finetune.data.NpyArray;
import org.finetune.model.KerasSavedModel;
import org.finetune.savedmodel.VariableInfo;
import org.finetune.testing.Fixture;
import org.finetune.testing.TreeDigest;
import org.finetune.train.LossSpec;
import org.finetune.train.Trainer;
import org.finetune.train.TrainingPlan;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code finetune train --lora} on the small GPT-2: what trains, what the export changes, resuming, bad flags. */
class LowRankCommandTest {
  private static final String SMALL = "generated/gpt2_small/keras3_export";
  private static final List<String> TARGETS = List.of("transformer_layer_0/self_attention/query/kernel",
      "transformer_layer_0/self_attention/value/kernel", "transformer_layer_1/self_attention/query/kernel",
      "transformer_layer_1/self_attention/value/kernel");

  @TempDir
  Path tmp;

  private CliRun train(Path data, int epochs, Path out, String... more) {
    List<String> args = new ArrayList<>(List.of("train", Fixture.of(SMALL).model().toString(), "--task", "causal-lm",
        "--data", data.toString(), "--seq-len", "32", "--batch-size", "4", "--epochs", Integer.toString(epochs), "--lr",
        "0.01", "--lora", "4", "--lora-alpha", "8", "--out", out.toString()));
    args.addAll(List.of(more));
    return CliRun.of(args.toArray(new String[0]));
  }

  @Test
  void theMergedExportChangesTheTargetKernelsAloneAndAResumedRunEndsBitForBit() throws IOException {
    Path data = LanguageModelCommandTest.corpus(tmp.resolve("text"), 10, 3);
    Path model = Fixture.of(SMALL).model();
    String before = TreeDigest.of(model);
    Path straight = tmp.resolve("straight");
    CliRun run = train(data, 2, straight);
    assertEquals(ExitCode.OK, run.exit(), run.err() + run.out());
    assertTrue(run.out().contains("Adapters: low-rank adapters, rank 4 (update scaled by alpha/rank = 2.0), on 4"
        + " kernels, the attention query and value kernels, as keras-hub's enable_lora"), run.out());
    assertTrue(run.out().contains("\"select\":\"adapters\"") && run.out().contains("\"lora\":{\"rank\":4,\"alpha\":8.0"),
        "the plan names the adapters: " + run.out());
    assertTrue(run.out().contains("same architecture"), run.out());
    assertEquals(before, TreeDigest.of(model), "the base model is only read");

    Map<String, NpyArray> base = values(model);
    Map<String, NpyArray> merged = values(straight);
    assertEquals(base.keySet(), merged.keySet(), "the export has the base's variables and no adapters");
    for (String name : base.keySet()) {
      boolean same = java.util.Arrays.equals(base.get(name).data(), merged.get(name).data());
      if (TARGETS.contains(name)) {
        assertFalse(same, name + " holds the merged update");
      } else {
        assertTrue(same, name + " is not a target and stays as it was");
      }
    }

    // One epoch with checkpoints, then the second resumed from them: the adapters and their
    // optimizer state come back, so the export equals the run that never stopped.
    Path ckpt = tmp.resolve("ckpt");
    assertEquals(ExitCode.OK, train(data, 1, tmp.resolve("first"), "--checkpoints", ckpt.toString()).exit());
    Path resumed = tmp.resolve("resumed");
    CliRun second = train(data, 2, resumed, "--resume", ckpt.resolve("last").toString());
    assertEquals(ExitCode.OK, second.exit(), second.err() + second.out());
    assertTrue(second.out().contains("Resuming from"), second.out());
    Map<String, NpyArray> again = values(resumed);
    for (String name : merged.keySet()) {
      assertArrayEquals(merged.get(name).data(), again.get(name).data(), name + ": resumed vs straight");
    }
  }

  @Test
  void badLowRankFlagsExitTwoNamingTheFlag() throws IOException {
    Path data = LanguageModelCommandTest.corpus(tmp.resolve("text"), 4, 5);
    String m = Fixture.of(SMALL).model().toString();
    CliRun zero = CliRun.of("train", m, "--task", "causal-lm", "--data", data.toString(), "--lora", "0");
    assertEquals(ExitCode.BAD_INPUT, zero.exit(), zero.err());
    assertTrue(zero.errLine().contains("--lora takes the adapters' rank"), zero.err());
    CliRun alone = CliRun.of("train", m, "--task", "causal-lm", "--data", data.toString(), "--lora-alpha", "8");
    assertEquals(ExitCode.BAD_INPUT, alone.exit(), alone.err());
    assertTrue(alone.errLine().contains("--lora-alpha needs --lora RANK"), alone.err());
    CliRun none = CliRun.of("train", m, "--task", "causal-lm", "--data", data.toString(), "--lora", "4",
        "--lora-targets", "*/nothing/kernel", "--out", tmp.resolve("never").toString());
    assertEquals(ExitCode.BAD_INPUT, none.exit(), none.err());
    assertTrue(none.err().contains("'*/nothing/kernel' matches no variable")
        && none.err().contains("--lora-targets GLOB"), none.err());
    // A new head on block5_pool cuts VGG16's Dense kernels (the default targets) away from the loss.
    CliRun cut = CliRun.of("train", Fixture.of("vgg16_small/keras3_export").model().toString(), "--data",
        Fixture.projectRoot().resolve("testdata/digits/train").toString(), "--head", "--lora", "2", "--out",
        tmp.resolve("never2").toString());
    assertEquals(ExitCode.BAD_INPUT, cut.exit(), cut.err());
    assertTrue(cut.errLine().contains("the loss does not reach 3 of the 3 kernels chosen for adapters (fc1/kernel,"
        + " fc2/kernel, predictions/kernel)") && cut.errLine().contains("--lora-targets"), cut.err());
  }

  @Test
  void aJobFileWithLowRankAdaptersTrainsAsTheSameFlagsDo() throws IOException {
    Path data = LanguageModelCommandTest.corpus(tmp.resolve("text"), 6, 4);
    CliRun flags = train(data, 1, tmp.resolve("flags"), "--lora-targets", "*/query/kernel", "--lora-out",
        tmp.resolve("flags_adapters").toString());
    assertEquals(ExitCode.OK, flags.exit(), flags.err() + flags.out());
    assertTrue(flags.out().contains("on 2 kernels, the kernels matching */query/kernel"), flags.out());
    assertTrue(flags.out().contains("Adapters written apart to " + tmp.resolve("flags_adapters")), flags.out());
    org.finetune.train.AdapterSet apart = org.finetune.train.AdapterSet.read(tmp.resolve("flags_adapters"));
    assertEquals(List.of("transformer_layer_0/self_attention/query/kernel",
        "transformer_layer_1/self_attention/query/kernel"), apart.pairs().stream()
        .map(org.finetune.train.AdapterSet.Pair::kernel).toList());
    Path job = tmp.resolve("job.json");
    java.nio.file.Files.writeString(job, """
        {"model": "%s", "task": "causal-lm", "data": "%s", "sequence_length": 32, "batch_size": 4, "epochs": 1,
         "optimizer": {"name": "adam", "learning_rate": 0.01},
         "lora": {"rank": 4, "alpha": 8, "targets": ["*/query/kernel"]}, "export": "%s", "lora_export": "%s"}
        """.formatted(Fixture.of(SMALL).model(), data, tmp.resolve("file"), tmp.resolve("file_adapters")));
    CliRun file = CliRun.of("train", "--job", job.toString());
    assertEquals(ExitCode.OK, file.exit(), file.err() + file.out());
    assertEquals(planLine(flags.out()), planLine(file.out()));
    Map<String, NpyArray> a = values(tmp.resolve("flags"));
    Map<String, NpyArray> b = values(tmp.resolve("file"));
    for (String name : a.keySet()) {
      assertArrayEquals(a.get(name).data(), b.get(name).data(), name);
    }
    org.finetune.train.AdapterSet fromFile = org.finetune.train.AdapterSet.read(tmp.resolve("file_adapters"));
    for (int i = 0; i < apart.pairs().size(); i++) {
      assertArrayEquals(apart.pairs().get(i).a().data(), fromFile.pairs().get(i).a().data());
      assertArrayEquals(apart.pairs().get(i).b().data(), fromFile.pairs().get(i).b().data());
    }
  }

  @Test
  void aBatchSweepsRankAndAlphaAndChecksEveryRunFirst() throws IOException {
    Path data = LanguageModelCommandTest.corpus(tmp.resolve("text"), 4, 6);
    String jobs = """
        {"defaults": {"model": "%s", "task": "causal-lm", "data": "%s", "sequence_length": 32, "batch_size": 4,
                      "epochs": 1, "lora": {"rank": 4}},
         "sweeps": [{"name": "lora", "export": "runs", "grid": {"lora.rank": [%s, 8], "lora.alpha": [4, 16]}}]}
        """;
    Path good = tmp.resolve("jobs.json");
    java.nio.file.Files.writeString(good, jobs.formatted(Fixture.of(SMALL).model(), data, "2"));
    CliRun run = CliRun.of("batch", good.toString(), "--dry-run");
    assertEquals(ExitCode.OK, run.exit(), run.err() + run.out());
    for (String combo : List.of("\"rank\":2,\"alpha\":4", "\"rank\":2,\"alpha\":16", "\"rank\":8,\"alpha\":4",
        "\"rank\":8,\"alpha\":16")) {
      assertTrue(run.out().contains("\"lora\":{" + combo + "}"), combo + " in " + run.out());
    }
    Path bad = tmp.resolve("bad.json");
    java.nio.file.Files.writeString(bad, jobs.formatted(Fixture.of(SMALL).model(), data, "0"));
    CliRun refused = CliRun.of("batch", bad.toString(), "--dry-run");
    assertEquals(ExitCode.BAD_INPUT, refused.exit(), refused.err());
    assertTrue(refused.err().contains("\"lora\": the adapters' rank must be >= 1, got 0"), refused.err());
  }

  private static String planLine(String out) {
    return out.lines().filter(l -> l.startsWith("Plan: ")).findFirst().orElseThrow(() -> new AssertionError(out));
  }

  /** Every variable the serving signature reads, by name. */
  private static Map<String, NpyArray> values(Path dir) {
    try (KerasSavedModel m = KerasSavedModel.open(dir);
        Trainer t = new Trainer(m, TrainingPlan.builder().loss(LossSpec.CAUSAL_LM).build())) {
      return t.values(m.info().variables().stream().filter(v -> !v.handle().isEmpty()).map(VariableInfo::name)
          .toList());
    }
  }
}
