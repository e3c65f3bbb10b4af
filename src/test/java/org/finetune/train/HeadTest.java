package org.finetune.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.List;
import java.util.Map;
import org.finetune.data.NpyArray;
import org.finetune.model.KerasSavedModel;
import org.finetune.savedmodel.LayerInfo;
import org.finetune.testing.Fixture;
import org.junit.jupiter.api.Test;

/**
 * A new head on the small VGG16 (its parity with Keras is in {@link KerasParityTest}): where it
 * cuts, what it adds, how it starts, and that dropout acts in training steps only.
 */
class HeadTest {
  static final HeadSpec HEAD = HeadSpec.classifier(3).at("block5_pool").hidden(8, 0.5);

  static KerasSavedModel open() {
    return KerasSavedModel.open(Fixture.of("vgg16_small/keras3_export").model());
  }

  static Batch batch() throws IOException {
    Batch b = GradualUnfreezingTest.batch();
    return Batch.of(b.inputs(), new NpyArray("int32", new long[] {2}, new byte[] {2, 0, 0, 0, 1, 0, 0, 0}));
  }

  @Test
  void aCutLeavesTheLayersAboveItOutAndAddsTheHeadsLayersLast() {
    try (KerasSavedModel model = open();
        Trainer trainer = new Trainer(model, TrainingPlan.builder().head(HEAD).build())) {
      List<String> layers = trainer.selectableModel().layers().stream().map(LayerInfo::name).toList();
      assertEquals(List.of("block5_conv3", "head_hidden", "head_output"), layers.subList(layers.size() - 3, layers.size()));
      assertFalse(layers.contains("fc1") || layers.contains("predictions"), layers.toString());
      assertEquals(List.of("head_hidden/kernel", "head_hidden/bias", "head_output/kernel", "head_output/bias"),
          trainer.headVariables());
      assertEquals(List.of("head_hidden/kernel", "head_hidden/bias", "head_output/kernel", "head_output/bias"),
          trainer.trainedVariables(0).subList(trainer.trainedVariables(0).size() - 4, trainer.trainedVariables(0).size()));
      assertTrue(trainer.warnings().isEmpty(), "layers cut away are no warning: " + trainer.warnings());
    }
    try (KerasSavedModel model = open();
        Trainer trainer = new Trainer(model, TrainingPlan.builder().head(HEAD)
            .stage(Stage.of(Selector.parse("last:1"))).build())) {
      assertEquals(List.of("head_output/kernel", "head_output/bias"), trainer.trainedVariables(0));
    }
  }

  @Test
  void kernelsStartGlorotUniformBiasesAtZeroAndTheSeedFixesTheStart() {
    Map<String, NpyArray> first;
    try (KerasSavedModel model = open(); Trainer trainer = new Trainer(model, TrainingPlan.builder().head(HEAD).build())) {
      first = trainer.values(trainer.headVariables());
    }
    // block5_pool has 64 channels in the small VGG16: hidden kernel 64x8, output kernel 8x3.
    assertArrayEquals(new long[] {64, 8}, first.get("head_hidden/kernel").shape());
    checkGlorot(first.get("head_hidden/kernel").toDoubles(), 64, 8);
    checkGlorot(first.get("head_output/kernel").toDoubles(), 8, 3);
    for (double b : first.get("head_hidden/bias").toDoubles()) {
      assertEquals(0.0, b);
    }
    try (KerasSavedModel model = open(); Trainer same = new Trainer(model, TrainingPlan.builder().head(HEAD).build());
        Trainer other = new Trainer(model, TrainingPlan.builder().head(HEAD.seed(99)).build())) {
      assertArrayEquals(first.get("head_hidden/kernel").data(), same.values(List.of("head_hidden/kernel"))
          .get("head_hidden/kernel").data());
      assertFalse(java.util.Arrays.equals(first.get("head_hidden/kernel").data(),
          other.values(List.of("head_hidden/kernel")).get("head_hidden/kernel").data()));
    }
  }

  private static void checkGlorot(double[] values, int in, int out) {
    double limit = Math.sqrt(6.0 / (in + out));
    double max = 0;
    double sum = 0;
    for (double v : values) {
      assertTrue(Math.abs(v) <= limit, v + " outside +-" + limit);
      max = Math.max(max, Math.abs(v));
      sum += v;
    }
    assertTrue(max > 0.8 * limit, "uniform over the whole range: max " + max + " of " + limit);
    assertTrue(Math.abs(sum / values.length) < 0.2 * limit, "centred: mean " + sum / values.length);
  }

  @Test
  void dropoutActsInTrainingStepsOnly() throws IOException {
    Batch batch = batch();
    try (KerasSavedModel model = open();
        Trainer trainer = new Trainer(model, TrainingPlan.builder().head(HEAD)
            .optimizer(new OptimizerSpec.Sgd(0.0001, 0, false)).build())) {
      double a = trainer.evaluate(batch).loss();
      double b = trainer.evaluate(batch).loss();
      assertEquals(a, b, "evaluation is deterministic");
      Map<String, NpyArray> g1 = trainer.gradients(batch);
      Map<String, NpyArray> g2 = trainer.gradients(batch);
      assertArrayEquals(g1.get("head_output/kernel").data(), g2.get("head_output/kernel").data());
      double training = trainer.step(batch).loss();
      assertNotEquals(a, training, "the step's loss is taken with half the hidden units dropped");
    }
    try (KerasSavedModel model = open();
        Trainer trainer = new Trainer(model, TrainingPlan.builder().head(HEAD.hidden(8, 0)).build())) {
      assertEquals(trainer.evaluate(batch).loss(), trainer.step(batch).loss(), "without dropout a step sees what evaluation sees");
    }
  }

  @Test
  void badHeadsAreRefusedWithTheReason() {
    try (KerasSavedModel model = open()) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> new Trainer(model, TrainingPlan.builder().head(HeadSpec.classifier(3).at("block9_pool")).build()));
      assertTrue(e.getMessage().contains("no layer named 'block9_pool'"), e.getMessage());
      e = assertThrows(IllegalArgumentException.class, () -> new Trainer(model, TrainingPlan.builder()
          .head(HeadSpec.classifier(3).at("block5_pool").pooling(HeadSpec.Pooling.NONE)).build()));
      assertTrue(e.getMessage().contains("pooling NONE needs 2-D features"), e.getMessage());
    }
    assertThrows(IllegalArgumentException.class, () -> HeadSpec.classifier(0));
    assertThrows(IllegalArgumentException.class, () -> HeadSpec.classifier(2).hidden(0, 0.5));
    assertThrows(IllegalArgumentException.class, () -> HeadSpec.classifier(2).hidden(4, 1.0));
  }

  @Test
  void notFreezesWhatItNames() {
    Selector s = Selector.parse("not:block:block1");
    assertEquals("not:block:block1", s.text());
    try (KerasSavedModel model = open();
        Trainer trainer = new Trainer(model, TrainingPlan.builder().stage(Stage.of(s)).build())) {
      List<String> trained = trainer.trainedVariables(0);
      assertTrue(trained.stream().noneMatch(v -> v.startsWith("block1_")), trained.toString());
      assertTrue(trained.contains("block2_conv1/kernel") && trained.contains("predictions/bias"), trained.toString());
      assertEquals(32 - 4, trained.size(), "all but block1's two kernels and two biases");
    }
  }
}
