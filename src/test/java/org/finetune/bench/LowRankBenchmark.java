package org.finetune.bench;

import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import org.finetune.model.KerasSavedModel;
import org.finetune.testing.Fixture;
import org.finetune.train.Batch;
import org.finetune.train.LossSpec;
import org.finetune.train.LowRankSpec;
import org.finetune.train.OptimizerSpec;
import org.finetune.train.Selector;
import org.finetune.train.Stage;
import org.finetune.train.Trainer;
import org.finetune.train.TrainingPlan;

/**
 * Low-rank adapters against full fine-tuning on one GPT-2, one arm per process (so that the
 * peak resident memory is the arm's own): Adam, causal-LM loss, a fixed batch of random tokens.
 * Prints the time from opening the model to the first step's end, the median step time and
 * tokens/s over the timed steps, the trained weights and the optimizer state they need (Adam
 * keeps two floats per trained weight), and the process's peak RSS.
 *
 * <pre>
 *   scripts/benchmark LowRankBenchmark full [generated/gpt2_base/keras3_export] [batch 4] [length 128] [steps 3]
 *   scripts/benchmark LowRankBenchmark lora:8 [...]
 * </pre>
 */
public final class LowRankBenchmark {
  private LowRankBenchmark() {}

  public static void main(String[] args) throws Exception {
    String arm = args.length > 0 ? args[0] : "lora:8";
    String fixture = args.length > 1 ? args[1] : "generated/gpt2_base/keras3_export";
    int batch = args.length > 2 ? Integer.parseInt(args[2]) : 4;
    int length = args.length > 3 ? Integer.parseInt(args[3]) : 128;
    int steps = args.length > 4 ? Integer.parseInt(args[4]) : 3;
    TrainingPlan.Builder b = TrainingPlan.builder().loss(LossSpec.CAUSAL_LM).optimizer(OptimizerSpec.Adam.defaults());
    if (arm.equals("full")) {
      b.stage(Stage.of(new Selector.All()));
    } else if (arm.startsWith("lora:")) {
      b.lowRank(LowRankSpec.of(Integer.parseInt(arm.substring(5)))).stage(Stage.of(new Selector.Adapters()));
    } else {
      throw new IllegalArgumentException("arm must be full or lora:RANK, got " + arm);
    }
    Batch tokens = CompareBenchmark.tokenBatch(batch, length, 1);
    long t0 = System.nanoTime();
    try (KerasSavedModel m = KerasSavedModel.open(Fixture.of(fixture).model()); Trainer t = new Trainer(m, b.build())) {
      t.step(tokens);
      double firstStep = (System.nanoTime() - t0) / 1e9;
      double[] s = new double[steps];
      for (int i = 0; i < steps; i++) {
        long start = System.nanoTime();
        t.step(tokens);
        s[i] = (System.nanoTime() - start) / 1e9;
      }
      List<String> trained = t.trainedVariables(0);
      long weights = 0;
      for (org.finetune.savedmodel.VariableInfo v : t.selectableModel().variables()) {
        if (trained.contains(v.name())) {
          weights += v.shape().stream().mapToLong(Long::longValue).reduce(1, (x, y) -> x * y);
        }
      }
      double[] sorted = s.clone();
      Arrays.sort(sorted);
      double median = sorted[sorted.length / 2];
      System.out.printf(Locale.ROOT, "%s %s, batch %d x %d tokens, Adam: open to first step %.1f s; step median %.2f s"
          + " (%s s) = %.0f tokens/s; %d variables training, %,d weights; optimizer state %,d floats (%.1f MB);"
          + " peak RSS %.2f GB%n", fixture, arm, batch, length, firstStep, median, Arrays.toString(s),
          batch * length / median, trained.size(), weights, 2 * weights, 8.0 * weights / 1e6,
          CompareBenchmark.vmHwmKib() / 1024.0 / 1024.0);
    }
  }
}
