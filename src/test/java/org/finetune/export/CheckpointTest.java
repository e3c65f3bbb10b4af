package org.finetune.export;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.finetune.data.NpyArray;
import org.finetune.model.KerasSavedModel;
import org.finetune.testing.Fixture;
import org.finetune.train.Batch;
import org.finetune.train.GradualUnfreezing;
import org.finetune.train.HeadSpec;
import org.finetune.train.OptimizerSpec;
import org.finetune.train.Selector;
import org.finetune.train.Trainer;
import org.finetune.train.TrainingPlan;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A checkpoint holds everything training changes: training resumed from it goes on exactly. */
class CheckpointTest {
  @TempDir
  Path tmp;

  static TrainingPlan plan() {
    return TrainingPlan.builder().head(HeadSpec.classifier(3).at("block5_pool").hidden(8, 0))
        .optimizer(OptimizerSpec.Adam.defaults())
        .stages(GradualUnfreezing.fromTop(List.of(Selector.parse("head"), Selector.parse("block:block5")), 2.6))
        .build();
  }

  @Test
  void resumingFromACheckpointReachesTheSameWeightsAsGoingOn() throws IOException {
    Fixture fixture = Fixture.of("vgg16_small/keras3_export");
    Map<String, NpyArray> inputs = ExportTest.sampleInputs(fixture);
    Batch batch = Batch.of(inputs, ExportTest.labels(inputs.values().iterator().next().shape()[0], 3));
    Path checkpoint = tmp.resolve("checkpoint");
    Map<String, NpyArray> straight;
    List<String> names;
    try (KerasSavedModel model = KerasSavedModel.open(fixture.model()); Trainer trainer = new Trainer(model, plan())) {
      trainer.step(batch);
      trainer.useStage(1);
      trainer.step(batch);
      JsonObject extra = new JsonObject();
      extra.addProperty("epochs", 2);
      Checkpoint.save(trainer, checkpoint, extra);
      trainer.step(batch);
      trainer.step(batch);
      names = List.copyOf(trainer.stateVariables().keySet());
      straight = trainer.values(trainer.trainedVariables(1));
    }
    Checkpoint.Info info = Checkpoint.read(checkpoint);
    assertEquals(2, info.iterations());
    assertEquals(1, info.stage());
    assertEquals(List.of(0, 1), info.builtStages());
    assertEquals(2, info.extra().get("epochs").getAsInt());
    try (KerasSavedModel model = KerasSavedModel.open(fixture.model());
        Trainer trainer = new Trainer(model, info.plan())) {
      Checkpoint.restore(trainer, info);
      assertEquals(2, trainer.iterations());
      assertEquals(names, List.copyOf(trainer.stateVariables().keySet()), "the same state, slots included");
      trainer.step(batch);
      trainer.step(batch);
      Map<String, NpyArray> resumed = trainer.values(trainer.trainedVariables(1));
      for (String name : straight.keySet()) {
        assertArrayEquals(straight.get(name).data(), resumed.get(name).data(), name);
      }
    }
  }

  @Test
  void aCheckpointRefusesAnotherPlanAndADamagedDirectory() throws IOException {
    Fixture fixture = Fixture.of("vgg16_small/keras3_export");
    Path checkpoint = tmp.resolve("checkpoint");
    try (KerasSavedModel model = KerasSavedModel.open(fixture.model()); Trainer trainer = new Trainer(model, plan())) {
      Checkpoint.save(trainer, checkpoint, null);
      try (Trainer other = new Trainer(model, TrainingPlan.builder().build())) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> Checkpoint.restore(other, Checkpoint.read(checkpoint)));
        assertTrue(e.getMessage().contains("plan differs"), e.getMessage());
      }
    }
    java.nio.file.Files.delete(checkpoint.resolve(Checkpoint.STATE));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Checkpoint.read(checkpoint));
    assertTrue(e.getMessage().contains("state.json is missing"), e.getMessage());
  }
}
