package org.finetune.bench;

import java.nio.file.Files;
import java.nio.file.Path;
import org.finetune.model.KerasSavedModel;
import org.finetune.testing.Fixture;
import org.finetune.train.Batch;
import org.finetune.train.LossSpec;
import org.finetune.train.OptimizerSpec;
import org.finetune.train.Selector;
import org.finetune.train.Stage;
import org.finetune.train.Trainer;
import org.finetune.train.TrainingPlan;

/**
 * Resident memory of a fixture's training process (GPT-2: all layers; images: the new head and
 * the given selector), phase by phase (runtime loaded, model
 * opened, signature flattened, trainer built, each of three steps), from /proc/self/status:
 * where the peak RSS of the benchmark's GPT-2 rows comes from.
 *
 * <pre>
 *   scripts/benchmark RssProbe generated/gpt2_base/keras3_export
 *   scripts/benchmark RssProbe generated/inception_v3/keras3_export block:mixed9
 * </pre>
 */
public final class RssProbe {
  private RssProbe() {}

  public static void main(String[] args) throws Exception {
    String fixture = args.length > 0 ? args[0] : "generated/gpt2_small/keras3_export";
    print("start");
    try (org.tensorflow.Graph g = new org.tensorflow.Graph(); org.tensorflow.Session s = new org.tensorflow.Session(g)) {
      print("runtime loaded");
    }
    boolean text = fixture.contains("gpt2");
    TrainingPlan plan = text
        ? TrainingPlan.builder().loss(LossSpec.CAUSAL_LM).stage(Stage.of(Selector.parse("all")))
            .optimizer(OptimizerSpec.Adam.defaults()).build()
        : CompareBenchmark.imagePlan(args.length > 1 ? args[1] : "head");
    try (KerasSavedModel m = CompareBenchmark.open(Fixture.of(fixture).model())) {
      print("opened (" + m.saverAliases().size() + " saver aliases freed)");
      m.flatSignature(m.info().selectedSignature().name());
      print("flattened");
      try (Trainer t = new Trainer(m, plan)) {
        print("trainer built");
        Batch b = text ? CompareBenchmark.tokenBatch(4, 128, 1)
            : CompareBenchmark.imageBatch(m.info().selectedSignature().inputs().get(0).key(), 32,
                m.info().selectedSignature().inputs().get(0).shape().get(1).intValue(), 1);
        for (int i = 1; i <= 3; i++) {
          t.step(b);
          print("step " + i);
        }
      }
    }
  }

  private static void print(String what) throws Exception {
    String rss = Files.readAllLines(Path.of("/proc/self/status")).stream()
        .filter(l -> l.startsWith("VmRSS") || l.startsWith("VmHWM")).map(l -> l.replaceAll("\\s+", " "))
        .reduce((a, b) -> a + ", " + b).orElse("");
    Runtime r = Runtime.getRuntime();
    System.out.printf("%-40s %s; Java heap in use %d MB%n", what, rss, (r.totalMemory() - r.freeMemory()) >> 20);
  }

  /** The process's resident memory now, in MiB (VmRSS of /proc/self/status). */
  static double rssMiB() throws java.io.IOException {
    return Files.readAllLines(Path.of("/proc/self/status")).stream().filter(l -> l.startsWith("VmRSS"))
        .mapToLong(l -> Long.parseLong(l.replaceAll("[^0-9]", ""))).findFirst().orElse(0) / 1024.0;
  }
}
