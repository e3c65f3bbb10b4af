package org.finetune.serving;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.finetune.data.ImageDataset;
import org.finetune.data.ImageFolder;
import org.finetune.data.ImageOps;
import org.finetune.data.NpyArray;
import org.finetune.model.KerasSavedModel;
import org.finetune.testing.Fixture;
import org.finetune.testing.Images;
import org.finetune.train.Fit;
import org.finetune.train.HeadSpec;
import org.finetune.train.OptimizerSpec;
import org.finetune.train.Selector;
import org.finetune.train.Stage;
import org.finetune.train.Trainer;
import org.finetune.train.TrainingPlan;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Several models at once in one JVM, and native memory over many load/close cycles. */
class ConcurrencyTest {
  @TempDir
  Path tmp;

  private static NpyArray image(int seed) {
    return Images.randomInput(seed);
  }

  /** Trains a new head for a few epochs; returns the last epoch's loss. */
  private static double train(Path model, Path images, int epochs) {
    ImageFolder folder = ImageFolder.scan(images);
    try (KerasSavedModel m = KerasSavedModel.open(model);
        Trainer t = new Trainer(m, TrainingPlan.builder().head(HeadSpec.classifier(folder.classes().size()))
            .optimizer(OptimizerSpec.Adam.defaults()).stage(Stage.of(Selector.parse("all"))).build());
        ImageDataset data = ImageDataset.open(folder.items(), ImageDataset.Options.of(32, 32,
            ImageOps.Preprocess.CAFFE, 4))) {
      String input = m.info().selectedSignature().inputs().get(0).key();
      List<Fit.Epoch> h = Fit.run(t, Fit.images(data, input), Optional.empty(), new Fit.Options(epochs,
          OptionalInt.empty()), List.of(), Fit.Start.BEGINNING);
      return h.get(h.size() - 1).logs().get("loss");
    }
  }

  @Test
  void sixteenThreadsPredictTenThousandTimesWhileTwoOtherModelsTrain() throws Exception {
    Path images = Images.folder(tmp.resolve("images"), List.of("a", "b"), 4, 32, 3);
    Path served = Fixture.of("vgg16_small/keras3_export").model();
    int distinct = 16;
    double[][] expected = new double[distinct][];
    try (Predictor p = Predictor.open(served)) {
      String input = p.inputs().get(0).key();
      for (int i = 0; i < distinct; i++) {
        expected[i] = p.predict(Map.of(input, image(i))).outputs().get("output_0").toDoubles();
      }
      ExecutorService pool = Executors.newFixedThreadPool(18);
      List<Future<Double>> trainers = new ArrayList<>();
      trainers.add(pool.submit(() -> train(Fixture.of("vgg16_small/tf_keras").model(), images, 3)));
      trainers.add(pool.submit(() -> train(Fixture.projectRoot().resolve("savedmodels/digits_vgg16/keras3_export/model"),
          images, 3)));
      List<Future<Integer>> callers = new ArrayList<>();
      for (int t = 0; t < 16; t++) {
        int thread = t;
        callers.add(pool.submit(() -> {
          int checked = 0;
          for (int i = 0; i < 625; i++) {
            int k = (thread * 625 + i) % distinct;
            double[] got = p.predict(Map.of(input, image(k))).outputs().get("output_0").toDoubles();
            assertArrayEquals(expected[k], got, 0.0, "thread " + thread + " call " + i);
            checked++;
          }
          return checked;
        }));
      }
      int calls = 0;
      for (Future<Integer> f : callers) {
        calls += f.get();
      }
      for (Future<Double> f : trainers) {
        assertTrue(Double.isFinite(f.get()));
      }
      pool.shutdown();
      assertEquals(10_000, calls);
      System.out.println("concurrency: 10,000 predictions on 16 threads equal the single-threaded ones while two"
          + " models trained");
    }
  }

  private static long rssKb() throws IOException {
    for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
      if (line.startsWith("VmRSS:")) {
        return Long.parseLong(line.replaceAll("[^0-9]", ""));
      }
    }
    throw new IllegalStateException("no VmRSS in /proc/self/status");
  }

  @Test
  void aHundredLoadCloseCyclesLeaveResidentMemoryNearItsBaseline() throws IOException {
    Path model = Fixture.of("vgg16_small/keras3_export").model();
    NpyArray x = image(1);
    List<Long> curve = new ArrayList<>();
    long baseline = 0;
    for (int cycle = 1; cycle <= 100; cycle++) {
      try (Predictor p = Predictor.open(model)) {
        p.predict(Map.of(p.inputs().get(0).key(), x));
      }
      if (cycle % 10 == 0) {
        System.gc();
        long rss = rssKb();
        curve.add(rss / 1024);
        if (cycle == 10) {
          baseline = rss;
        }
      }
    }
    long growth = (rssKb() - baseline) / 1024;
    System.out.println("load/close cycles: resident MB after 10, 20, ... 100 cycles: " + curve + "; growth after the"
        + " first 10: " + growth + " MB");
    assertTrue(growth < 64, "resident memory grew by " + growth + " MB over 90 load/close cycles: " + curve);
  }
}
