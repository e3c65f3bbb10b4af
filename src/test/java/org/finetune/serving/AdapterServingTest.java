package org.finetune.serving;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import org.finetune.data.NpyArray;
import org.finetune.export.ExportOptions;
import org.finetune.export.Exporter;
import org.finetune.model.KerasSavedModel;
import org.finetune.testing.Fixture;
import org.finetune.train.AdapterSet;
import org.finetune.train.Batch;
import org.finetune.train.LossSpec;
import org.finetune.train.LowRankSpec;
import org.finetune.train.OptimizerSpec;
import org.finetune.train.Selector;
import org.finetune.train.Stage;
import org.finetune.train.Trainer;
import org.finetune.train.TrainingPlan;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Two sets of low-rank adapters, exported apart from the small GPT-2, answer side by side from
 * one loaded base: each as its merged export answers, under concurrent calls that switch a name
 * from one set to the other, every answer equal to its set's single-threaded output.
 */
class AdapterServingTest {
  private static final String SMALL = "generated/gpt2_small/keras3_export";

  @TempDir
  Path tmp;

  /** Trains adapters (seeded start, a few steps on the sample) and exports them apart and merged. */
  private void train(Path base, long seed, int steps, Path apart, Path merged, Map<String, NpyArray> inputs) {
    TrainingPlan plan = TrainingPlan.builder().loss(LossSpec.CAUSAL_LM)
        .optimizer(new OptimizerSpec.Adam(0.01, 0.9, 0.999, 1e-7)).lowRank(LowRankSpec.of(4).withSeed(seed))
        .stage(Stage.of(new Selector.Adapters())).build();
    try (KerasSavedModel m = KerasSavedModel.open(base); Trainer t = new Trainer(m, plan)) {
      for (int i = 0; i < steps; i++) {
        t.step(Batch.unlabelled(inputs));
      }
      Exporter.exportAdapters(t, apart, ExportOptions.defaults());
      Exporter.export(t, merged, ExportOptions.defaults());
    }
  }

  @Test
  void twoAdapterSetsAnswerFromOneBaseAsTheirMergedExportsAndSwitchUnderLoad() throws Exception {
    Fixture fixture = Fixture.of(SMALL);
    Path base = fixture.model();
    JsonObject sample = fixture.expected().getAsJsonObject("sample").getAsJsonObject("inputs");
    Map<String, NpyArray> inputs = new LinkedHashMap<>();
    for (String key : sample.keySet()) {
      inputs.put(key, NpyArray.read(fixture.sampleFile(sample.get(key).getAsString())));
    }
    train(base, 1, 3, tmp.resolve("a"), tmp.resolve("a_merged"), inputs);
    train(base, 2, 6, tmp.resolve("b"), tmp.resolve("b_merged"), inputs);
    AdapterSet a = AdapterSet.read(tmp.resolve("a"));
    assertEquals(4, a.pairs().size());
    assertTrue(a.baseDigest().isPresent());

    try (Predictor p = Predictor.open(base)) {
      p.putAdapters("a", tmp.resolve("a"));
      p.putAdapters("b", tmp.resolve("b"));
      byte[] plain = p.predict(inputs).outputs().values().iterator().next().data();
      Map<String, byte[]> expected = new LinkedHashMap<>();
      for (String name : List.of("a", "b")) {
        NpyArray out = p.predict(name, inputs).outputs().values().iterator().next();
        expected.put(name, out.data());
        try (Predictor merged = Predictor.open(tmp.resolve(name + "_merged"))) {
          NpyArray m = merged.predict(inputs).outputs().values().iterator().next();
          double diff = NpyArray.relativeDifference(m.toDoubles(), out.toDoubles());
          System.out.printf("adapters %s applied to the open base vs its merged export: %.3g%n", name, diff);
          assertTrue(diff <= 1e-5, name + ": " + diff);
        }
      }
      assertFalse(java.util.Arrays.equals(expected.get("a"), expected.get("b")), "the two sets answer differently");
      assertFalse(java.util.Arrays.equals(expected.get("a"), plain), "the adapters change the answer");

      // 4 threads alternate between "a" and "switching" while one thread puts "a" then "b" under
      // "switching" again and again: every answer is one of the sets' single-threaded outputs, the
      // one its name held.
      p.putAdapters("switching", tmp.resolve("a"));
      ExecutorService pool = Executors.newFixedThreadPool(5);
      AtomicInteger done = new AtomicInteger();
      try {
        List<Future<int[]>> callers = new ArrayList<>();
        for (int thread = 0; thread < 4; thread++) {
          callers.add(pool.submit(() -> {
            int[] seen = new int[3];
            for (int call = 0; call < 60; call++) {
              boolean fixed = call % 2 == 0;
              byte[] got = p.predict(fixed ? "a" : "switching", inputs).outputs().values().iterator().next().data();
              if (fixed) {
                assertArrayEquals(expected.get("a"), got, "'a' answers as a");
                seen[0]++;
              } else if (java.util.Arrays.equals(expected.get("a"), got)) {
                seen[1]++;
              } else {
                assertArrayEquals(expected.get("b"), got, "'switching' answers as a or as b");
                seen[2]++;
              }
            }
            done.incrementAndGet();
            return seen;
          }));
        }
        Future<Integer> switcher = pool.submit(() -> {
          int switches = 0;
          while (done.get() < 4 && switches < 40) {
            p.putAdapters("switching", tmp.resolve(switches % 2 == 0 ? "b" : "a"));
            switches++;
          }
          return switches;
        });
        int[] total = new int[3];
        for (Future<int[]> f : callers) {
          int[] s = f.get();
          for (int i = 0; i < 3; i++) {
            total[i] += s[i];
          }
        }
        int switches = switcher.get();
        System.out.printf("adapter switching: %d calls to a, %d to the switching name (%d answered as a, %d as b),"
            + " %d switches%n", total[0], total[1] + total[2], total[1], total[2], switches);
        assertEquals(120, total[0]);
        assertTrue(switches > 0);
      } finally {
        pool.shutdownNow();
      }
      p.removeAdapters("b");
      IllegalArgumentException gone = assertThrows(IllegalArgumentException.class, () -> p.predict("b", inputs));
      assertTrue(gone.getMessage().contains("no adapters named 'b'; there are a, switching"), gone.getMessage());
    }
    // Adapters name the base they were trained on: a Predictor on another model refuses them.
    try (Predictor other = Predictor.open(tmp.resolve("a_merged"))) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> other.putAdapters("b", tmp.resolve("b")));
      assertTrue(e.getMessage().contains("were trained on another base"), e.getMessage());
    }
  }
}
