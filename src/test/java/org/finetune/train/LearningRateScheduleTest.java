package org.finetune.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import org.finetune.testing.Python;
import org.junit.jupiter.api.Test;

/** Our schedules equal Keras's at every step; the slanted triangle has ULMFiT's shape. */
class LearningRateScheduleTest {
  static final int STEPS = 120;

  @Test
  void cosineWithWarmupAndStepDecayEqualKeras() {
    String plan = "{\"steps\": " + STEPS + ", \"schedules\": {"
        + "\"cosine\": {\"kind\": \"cosine_warmup\", \"initial\": 0.0001, \"target\": 0.01, \"warmup_steps\": 10,"
        + " \"decay_steps\": 90, \"alpha\": 0.05},"
        + "\"step\": {\"kind\": \"step_decay\", \"rate\": 0.1, \"every\": 25, \"factor\": 0.5}}}";
    JsonObject keras = JsonParser.parseString(Python.runWithInput("reference_schedules.py", plan)).getAsJsonObject();
    LearningRateSchedule cosine = new LearningRateSchedule.CosineWarmup(0.0001, 0.01, 10, 90, 0.05);
    LearningRateSchedule step = new LearningRateSchedule.StepDecay(0.1, 25, 0.5);
    double worst = 0;
    for (String name : new String[] {"cosine", "step"}) {
      JsonArray values = keras.getAsJsonArray(name);
      LearningRateSchedule ours = name.equals("cosine") ? cosine : step;
      for (int i = 0; i < STEPS; i++) {
        double k = values.get(i).getAsDouble();
        double diff = Math.abs(ours.at(i) - k) / k;
        worst = Math.max(worst, diff);
        // Keras computes in float32.
        assertTrue(diff < 1e-6, name + " step " + i + ": " + ours.at(i) + " vs Keras " + k);
      }
    }
    System.out.println("schedules vs Keras over " + STEPS + " steps: worst relative difference " + worst);
  }

  @Test
  void slantedTriangularRisesForTheCutFractionThenFalls() {
    LearningRateSchedule stlr = new LearningRateSchedule.SlantedTriangular(0.01, 100, 0.1, 32);
    assertEquals(0.01 / 32, stlr.at(0), 1e-12);
    assertEquals(0.01, stlr.at(10), 1e-12);
    assertTrue(stlr.at(5) > stlr.at(4) && stlr.at(50) < stlr.at(20));
    assertEquals(0.01 / 32, stlr.at(100), 1e-12);
  }
}
