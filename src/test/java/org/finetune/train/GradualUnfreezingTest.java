package org.finetune.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.finetune.data.NpyArray;
import org.finetune.model.KerasSavedModel;
import org.finetune.savedmodel.VariableInfo;
import org.finetune.testing.Fixture;
import org.junit.jupiter.api.Test;

/** Gradual unfreezing on the small VGG16: each stage changes exactly its scheduled variables. */
class GradualUnfreezingTest {
  static final List<Selector> GROUPS = List.of(
      Selector.parse("layers:fc1,fc2,predictions"), Selector.parse("block:block5"), Selector.parse("block:block4"));

  static Batch batch() throws IOException {
    Fixture f = Fixture.of("vgg16_small/keras3_export");
    NpyArray x = NpyArray.read(f.sampleFile("sample/input_keras_tensor.npy"));
    byte[] labels = {3, 0, 0, 0, 7, 0, 0, 0};
    return Batch.of(Map.of("keras_tensor", x), new NpyArray("int32", new long[] {2}, labels));
  }

  @Test
  void eachStageChangesExactlyTheScheduledVariables() throws IOException {
    Batch batch = batch();
    try (KerasSavedModel model = KerasSavedModel.open(Fixture.of("vgg16_small/keras3_export").model());
        Trainer trainer = new Trainer(model, TrainingPlan.builder()
            .optimizer(new OptimizerSpec.Sgd(0.05, 0.9, false))
            .stages(GradualUnfreezing.fromTop(GROUPS, GradualUnfreezing.DEFAULT_FACTOR)).build())) {
      List<String> all = model.info().variables().stream().map(VariableInfo::name).toList();
      List<String> expectedLayers = new ArrayList<>(List.of("fc1", "fc2", "predictions"));
      List<List<String>> added = List.of(List.of(), List.of("block5_conv1", "block5_conv2", "block5_conv3"),
          List.of("block4_conv1", "block4_conv2", "block4_conv3"));
      for (int stage = 0; stage < 3; stage++) {
        expectedLayers.addAll(added.get(stage));
        trainer.useStage(stage);
        assertEquals(new java.util.TreeSet<>(expectedLayers), new java.util.TreeSet<>(trainer.trainableSet(stage).layers()));
        Map<String, NpyArray> before = trainer.values(all);
        trainer.step(batch);
        Map<String, NpyArray> after = trainer.values(all);
        for (String name : all) {
          String layer = name.substring(0, name.indexOf('/'));
          boolean changed = !Arrays.equals(before.get(name).data(), after.get(name).data());
          assertEquals(expectedLayers.contains(layer), changed, "stage " + stage + ": " + name);
        }
      }
    }
  }

  @Test
  void lowerGroupsLearnAtTheDiscriminativeRate() throws IOException {
    Batch batch = batch();
    String variable = "block5_conv1/kernel";
    double[] plain = firstStepDelta(List.of(Stage.of(Selector.parse("block:block5"))), variable, batch);
    double[] scaled = firstStepDelta(GradualUnfreezing.fromTop(List.of(Selector.parse("layers:predictions"),
        Selector.parse("block:block5")), 2.6).subList(1, 2), variable, batch);
    double ratio = 0;
    double largest = Arrays.stream(plain).map(Math::abs).max().orElse(0);
    assertTrue(largest > 0, "the plain step must move the kernel");
    for (int i = 0; i < plain.length; i++) {
      // Only clear updates: a small difference of two float32 weights carries their rounding.
      if (Math.abs(plain[i]) > 0.05 * largest) {
        ratio = Math.max(ratio, Math.abs(scaled[i] / plain[i] - 1 / 2.6));
      }
    }
    assertTrue(ratio < 1e-3, "update ratio off by " + ratio);
  }

  private static double[] firstStepDelta(List<Stage> stages, String variable, Batch batch) {
    try (KerasSavedModel model = KerasSavedModel.open(Fixture.of("vgg16_small/keras3_export").model());
        // A large rate: the update must dwarf the float32 spacing of the weights it is read from.
        Trainer trainer = new Trainer(model, TrainingPlan.builder().optimizer(new OptimizerSpec.Sgd(20.0, 0, false))
            .stages(stages).build())) {
      double[] before = trainer.values(List.of(variable)).get(variable).toDoubles();
      trainer.step(batch);
      double[] after = trainer.values(List.of(variable)).get(variable).toDoubles();
      double[] delta = new double[before.length];
      for (int i = 0; i < delta.length; i++) {
        delta[i] = after[i] - before[i];
      }
      return delta;
    }
  }

  @Test
  void optimizerStateSurvivesAStageChange() throws IOException {
    Batch batch = batch();
    try (KerasSavedModel model = KerasSavedModel.open(Fixture.of("vgg16_small/keras3_export").model());
        Trainer trainer = new Trainer(model, TrainingPlan.builder().optimizer(OptimizerSpec.Adam.defaults())
            .stages(GradualUnfreezing.fromTop(GROUPS.subList(0, 2), 2.6)).build())) {
      trainer.step(batch);
      trainer.step(batch);
      assertEquals(2, trainer.iterations());
      trainer.useStage(1);
      trainer.step(batch);
      // Keras's step counter carries on; so do the moments of the variables already training.
      assertEquals(3, trainer.iterations());
    }
  }

  @Test
  void graphSizeStaysBoundedOverTwentyStages() throws IOException {
    Batch batch = batch();
    List<Stage> stages = new ArrayList<>();
    String[] layers = {"predictions", "fc2", "fc1", "block5_conv3", "block5_conv2"};
    for (int i = 0; i < 20; i++) {
      stages.add(Stage.of(Selector.parse("layers:" + layers[i % layers.length])));
    }
    try (KerasSavedModel model = KerasSavedModel.open(Fixture.of("vgg16_small/keras3_export").model());
        Trainer trainer = new Trainer(model, TrainingPlan.builder().optimizer(OptimizerSpec.Adam.defaults())
            .stages(stages).build())) {
      long start = trainer.graphNodeCount();
      long[] afterBuild = new long[20];
      for (int s = 0; s < 20; s++) {
        trainer.useStage(s);
        trainer.step(batch);
        afterBuild[s] = trainer.graphNodeCount();
      }
      System.out.println("graph nodes: before stages " + start + ", after building each of 20 stages "
          + Arrays.toString(afterBuild));
      long built = trainer.graphNodeCount();
      for (int round = 0; round < 3; round++) {
        for (int s = 0; s < 20; s++) {
          trainer.useStage(s);
          trainer.step(batch);
        }
      }
      assertEquals(built, trainer.graphNodeCount(), "steps and stage switches must not add nodes");
      assertFalse(afterBuild[19] - start > 20L * (afterBuild[0] - start) * 2, "stage graphs should be of similar size");
    }
  }
}
