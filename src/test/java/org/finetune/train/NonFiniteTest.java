package org.finetune.train;

import org.finetune.hint.Setting;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.Random;
import org.finetune.data.NpyArray;
import org.finetune.model.KerasSavedModel;
import org.finetune.testing.Fixture;
import org.junit.jupiter.api.Test;

/** A NaN in a batch: the step changes nothing, and Fit stops or skips the batch by policy. */
class NonFiniteTest {
  private static final String MODEL = "vgg16_small/keras3_export";

  private static Batch batch(String input, int seed, boolean poisoned) {
    Random r = new Random(seed);
    int n = 4;
    ByteBuffer x = ByteBuffer.allocate(n * 32 * 32 * 3 * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < n * 32 * 32 * 3; i++) {
      x.putFloat(poisoned && i == 77 ? Float.NaN : (float) (r.nextDouble() * 200 - 100));
    }
    int[] y = new int[n];
    for (int i = 0; i < n; i++) {
      y[i] = r.nextInt(3);
    }
    return Batch.of(Map.of(input, new NpyArray("float32", new long[] {n, 32, 32, 3}, x.array())),
        NpyArray.ofInts(new long[] {n}, y));
  }

  private static TrainingPlan plan() {
    return TrainingPlan.builder().head(HeadSpec.classifier(3).at("block5_pool").seed(3))
        .optimizer(OptimizerSpec.Adam.defaults()).stage(Stage.of(Selector.parse("all"))).build();
  }

  private static Fit.BatchSource source(List<Batch> batches) {
    return new Fit.BatchSource() {
      @Override
      public int batchesPerEpoch() {
        return batches.size();
      }

      @Override
      public Iterator<Batch> epoch(int epoch, int start) {
        return batches.subList(start, batches.size()).iterator();
      }
    };
  }

  /** Every variable, slot and the step counter, as the bytes of a checkpoint of them. */
  private static byte[] state(Trainer t) {
    try {
      java.nio.file.Path dir = java.nio.file.Files.createTempDirectory("finetune-state");
      t.saveState(dir.resolve("s"));
      try (java.util.stream.Stream<java.nio.file.Path> files = java.nio.file.Files.list(dir)) {
        java.nio.file.Path data = files.filter(f -> f.getFileName().toString().startsWith("s.data")).findFirst()
            .orElseThrow();
        return java.nio.file.Files.readAllBytes(data);
      }
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  private static void assertSameState(byte[] a, byte[] b) {
    assertArrayEquals(a, b, "variables, slots and step counter bit for bit");
  }

  @Test
  void aNonFiniteStepChangesNoVariableSlotOrCounter() {
    try (KerasSavedModel m = KerasSavedModel.open(Fixture.of(MODEL).model()); Trainer t = new Trainer(m, plan())) {
      String input = m.info().selectedSignature().inputs().get(0).key();
      t.step(batch(input, 1, false));
      byte[] before = state(t);
      NonFiniteStepException e = assertThrows(NonFiniteStepException.class, () -> t.step(batch(input, 2, true)));
      assertEquals(1, e.step());
      assertEquals(1, t.iterations());
      assertSameState(before, state(t));
      t.step(batch(input, 3, false));
      assertEquals(2, t.iterations());
    }
  }

  @Test
  void skippingAPoisonedBatchEqualsTrainingWithoutItAndStoppingNamesIt() {
    byte[] skipped;
    byte[] without;
    try (KerasSavedModel m = KerasSavedModel.open(Fixture.of(MODEL).model()); Trainer t = new Trainer(m, plan())) {
      String input = m.info().selectedSignature().inputs().get(0).key();
      List<Batch> batches = new ArrayList<>(List.of(batch(input, 1, false), batch(input, 2, true),
          batch(input, 3, false)));
      List<Fit.Epoch> h = Fit.run(t, source(batches), Optional.empty(),
          new Fit.Options(2, OptionalInt.empty()).withNonFinite(Fit.NonFinite.SKIP), List.of(), Fit.Start.BEGINNING);
      assertEquals(1.0, h.get(0).logs().get("skipped_batches"));
      assertEquals(2.0, h.get(1).logs().get("skipped_batches"));
      assertEquals(4, t.iterations());
      skipped = state(t);
    }
    try (KerasSavedModel m = KerasSavedModel.open(Fixture.of(MODEL).model()); Trainer t = new Trainer(m, plan())) {
      String input = m.info().selectedSignature().inputs().get(0).key();
      Fit.run(t, source(List.of(batch(input, 1, false), batch(input, 3, false))), Optional.empty(),
          new Fit.Options(2, OptionalInt.empty()), List.of(), Fit.Start.BEGINNING);
      without = state(t);
    }
    assertSameState(without, skipped);
    try (KerasSavedModel m = KerasSavedModel.open(Fixture.of(MODEL).model()); Trainer t = new Trainer(m, plan())) {
      String input = m.info().selectedSignature().inputs().get(0).key();
      Fit.NonFiniteLossException e = assertThrows(Fit.NonFiniteLossException.class, () -> Fit.run(t,
          source(List.of(batch(input, 1, false), batch(input, 2, true))), Optional.empty(),
          new Fit.Options(1, OptionalInt.empty()), List.of(), Fit.Start.BEGINNING));
      assertEquals(0, e.epoch());
      assertEquals(1, e.batch());
      assertEquals(1, e.step());
      assertEquals(1, t.iterations(), "the good step stays, the bad one never happened");
      assertEquals(Setting.NON_FINITE, e.setting(), "the fix concerns the non-finite policy");
      assertFalse(e.getMessage().contains("--"), "a library message names no command-line flag: " + e.getMessage());
    }
  }
}
