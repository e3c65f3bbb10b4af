package org.finetune.train;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.stream.Stream;
import org.finetune.model.KerasSavedModel;

import org.finetune.testing.Fixture;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Builds the whole training graph (flatten, loss, gradients of every trainable variable, Adam
 * updates) for the full-size models and prints how long each part took. The figures are the
 * measurement; the assertion is that every trainable weight got an update.
 */
class BuildTimeTest {
  static Stream<String> models() {
    return Stream.of("generated/vgg16/keras3_export", "generated/inception_v3/keras3_export",
        "generated/gpt2_base/keras3_export");
  }

  @ParameterizedTest
  @MethodSource("models")
  void fullSizeTrainingGraphBuildsEveryUpdate(String id) {
    Fixture fixture = Fixture.of(id);
    LossSpec loss = id.contains("gpt2") ? LossSpec.CAUSAL_LM : LossSpec.MSE;
    long t0 = System.nanoTime();
    try (KerasSavedModel model = KerasSavedModel.open(fixture.model())) {
      long t1 = System.nanoTime();
      model.flatSignature("serving_default");
      long t2 = System.nanoTime();
      try (Trainer trainer = new Trainer(model, TrainingPlan.builder().loss(loss).build())) {
        int trained = trainer.trainedVariables(0).size();
        long t3 = System.nanoTime();
        long expected = model.info().variables().stream().filter(v -> v.trainable() && v.weight()).count();
        System.out.printf("build time %-38s load %.2f s, flatten %.2f s, loss+gradients+Adam %.2f s,"
            + " training graph total %.2f s; %d variables trained, %d graph nodes%n", id, (t1 - t0) / 1e9,
            (t2 - t1) / 1e9, (t3 - t2) / 1e9, (t3 - t1) / 1e9, trained, trainer.graphNodeCount());
        assertEquals(expected, trained);
      }
    }
  }

}
