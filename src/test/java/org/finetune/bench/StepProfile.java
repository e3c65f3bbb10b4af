package org.finetune.bench;

import java.util.HashMap;
import java.util.Map;
import org.finetune.model.KerasSavedModel;
import org.finetune.testing.Fixture;
import org.finetune.train.Batch;
import org.finetune.train.LossSpec;
import org.finetune.train.OptimizerSpec;
import org.finetune.train.Selector;
import org.finetune.train.Stage;
import org.finetune.train.Trainer;
import org.finetune.train.TrainingPlan;
import org.tensorflow.proto.DeviceStepStats;
import org.tensorflow.proto.NodeExecStats;

/**
 * Where a training step's time goes, per op type and per node, from the runtime's own step stats
 * (full trace): the profiles behind the speed work in the README's Benchmarks section.
 *
 * <pre>
 *   scripts/benchmark StepProfile WORKLOAD [STEPS] [--device D] [--mixed-precision] [--xla]
 * </pre>
 *
 * WORKLOAD is one of CompareBenchmark's step workloads (vgg16_head, vgg16_block5, inception_mixed9,
 * gpt2_small, gpt2_base). Prints the untraced step time, then op times summed per step. Ops that
 * run at the same time overlap, so the sums exceed the step time on more than one core.
 */
public final class StepProfile {
  private StepProfile() {}

  public static void main(String[] args) throws Exception {
    if (args.length < 1) {
      System.err.println("usage: StepProfile WORKLOAD [STEPS] [--device D] [--mixed-precision] [--xla]");
      System.exit(2);
    }
    String workload = args[0];
    int steps = args.length > 1 && !args[1].startsWith("--") ? Integer.parseInt(args[1]) : 5;
    CompareBenchmark.configure(java.util.Arrays.asList(args));
    Map<String, Long> byType = new HashMap<>();
    Map<String, Long> byNode = new HashMap<>();
    String fixture;
    TrainingPlan plan;
    Batch batch;
    String input = null;
    int size = 0;
    switch (workload) {
      case "vgg16_head", "vgg16_block5" -> {
        fixture = "generated/vgg16/keras3_export";
        plan = CompareBenchmark.imagePlan(workload.equals("vgg16_head") ? "head" : "block:block5");
        size = 64;
      }
      case "inception_mixed9" -> {
        fixture = "generated/inception_v3/keras3_export";
        plan = CompareBenchmark.imagePlan("block:mixed9");
        size = 75;
      }
      case "gpt2_small", "gpt2_base" -> {
        fixture = "generated/" + workload + "/keras3_export";
        plan = TrainingPlan.builder().loss(LossSpec.CAUSAL_LM).stage(Stage.of(Selector.parse("all")))
            .optimizer(OptimizerSpec.Adam.defaults()).build();
      }
      default -> throw new IllegalArgumentException("unknown workload " + workload);
    }
    try (KerasSavedModel m = CompareBenchmark.open(Fixture.of(fixture).model()); Trainer t = new Trainer(m, plan)) {
      if (size > 0) {
        input = m.info().selectedSignature().inputs().get(0).key();
        batch = CompareBenchmark.imageBatch(input, 32, size, 1);
      } else {
        batch = CompareBenchmark.tokenBatch(4, 128, 1);
      }
      for (int i = 0; i < 3; i++) {
        t.step(batch);
      }
      long s = System.nanoTime();
      for (int i = 0; i < steps; i++) {
        t.step(batch);
      }
      System.out.printf("%s: untraced step %.4f s (%s)%n", workload, (System.nanoTime() - s) / 1e9 / steps,
          CompareBenchmark.runtime().describe());
      t.trace(md -> {
        for (DeviceStepStats d : md.getStepStats().getDevStatsList()) {
          for (NodeExecStats n : d.getNodeStatsList()) {
            long us = n.getAllEndRelMicros();
            String type = n.getTimelineLabel().replaceAll("^[^=]*= ?", "").replaceAll("\\(.*", "");
            byType.merge(type, us, Long::sum);
            byNode.merge(n.getNodeName(), us, Long::sum);
          }
        }
      });
      for (int i = 0; i < steps; i++) {
        t.step(batch);
      }
    }
    long total = byType.values().stream().mapToLong(Long::longValue).sum();
    System.out.printf("op time per traced step (summed over ops): %.1f ms%n", total / 1e3 / steps);
    print("op type", byType, steps, 25);
    print("node", byNode, steps, 20);
  }

  private static void print(String what, Map<String, Long> times, int steps, int limit) {
    System.out.println("--- by " + what);
    times.entrySet().stream().sorted(Map.Entry.<String, Long>comparingByValue().reversed()).limit(limit)
        .forEach(e -> System.out.printf("%9.2f ms  %s%n", e.getValue() / 1e3 / steps, e.getKey()));
  }
}
