package org.finetune.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.stream.Stream;
import org.finetune.data.NpyArray;
import org.finetune.testing.Fixture;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.tensorflow.Tensor;
import org.tensorflow.ndarray.Shape;
import org.tensorflow.types.TFloat32;
import org.tensorflow.types.TInt32;

/** Java's predict through the serving signature computes what Keras computed, for every fixture. */
class PredictParityTest {
  /** Relative tolerance: max |java - keras| / max |keras|. */
  static final double TOLERANCE = 1e-5;

  static Stream<Fixture> fixtures() {
    return Fixture.all();
  }

  @ParameterizedTest
  @MethodSource("fixtures")
  void predictOnTheStoredInputEqualsKerasOutput(Fixture fixture) throws IOException {
    JsonObject sample = fixture.expected().getAsJsonObject("sample");
    Map<String, Tensor> inputs = new LinkedHashMap<>();
    try (KerasSavedModel model = KerasSavedModel.open(fixture.model())) {
      for (String key : sample.getAsJsonObject("inputs").keySet()) {
        inputs.put(key, NpyArray.read(fixture.sampleFile(sample.getAsJsonObject("inputs").get(key).getAsString()))
            .toTensor());
      }
      Map<String, Tensor> outputs = model.predict(sample.get("signature").getAsString(), inputs);
      try {
        JsonObject expectedOutputs = sample.getAsJsonObject("outputs");
        assertEquals(expectedOutputs.keySet(), outputs.keySet());
        for (String key : expectedOutputs.keySet()) {
          NpyArray keras = NpyArray.read(fixture.sampleFile(expectedOutputs.get(key).getAsString()));
          NpyArray java = NpyArray.of(outputs.get(key));
          assertArrayEquals(keras.shape(), java.shape(), key + " shape");
          double diff = NpyArray.relativeDifference(keras.toDoubles(), java.toDoubles());
          System.out.printf("predict parity %-40s %-10s max|diff|/max|keras| = %.3g%n", fixture, key, diff);
          assertTrue(diff <= TOLERANCE, fixture + " " + key + ": relative difference " + diff + " > " + TOLERANCE);
        }
      } finally {
        outputs.values().forEach(Tensor::close);
      }
    } finally {
      inputs.values().forEach(Tensor::close);
    }
  }

  @Test
  void wrongInputNameIsRefusedWithTheNamesThatExist() {
    try (KerasSavedModel model = KerasSavedModel.open(Fixture.of("vgg16_small/keras3_export").model());
        TFloat32 x = TFloat32.tensorOf(Shape.of(1, 32, 32, 3))) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> model.predict(Map.of("image", x)));
      assertTrue(e.getMessage().contains("[keras_tensor]"), e.getMessage());
    }
  }

  @Test
  void wrongDtypeAndShapeAreRefusedBeforeTheRuntimeSeesThem() {
    try (KerasSavedModel model = KerasSavedModel.open(Fixture.of("vgg16_small/keras3_export").model());
        TInt32 ints = TInt32.tensorOf(Shape.of(1, 32, 32, 3));
        TFloat32 small = TFloat32.tensorOf(Shape.of(1, 16, 16, 3))) {
      String dtype = assertThrows(IllegalArgumentException.class,
          () -> model.predict(Map.of("keras_tensor", ints))).getMessage();
      assertTrue(dtype.contains("must be float32, got int32"), dtype);
      String shape = assertThrows(IllegalArgumentException.class,
          () -> model.predict(Map.of("keras_tensor", small))).getMessage();
      assertTrue(shape.contains("(None, 32, 32, 3)"), shape);
    }
  }

  @Test
  void useAfterCloseIsRefused() {
    KerasSavedModel model = KerasSavedModel.open(Fixture.of("tf1_linear/tf1").model());
    model.close();
    model.close(); // closing twice is harmless
    try (TFloat32 x = TFloat32.tensorOf(Shape.of(1, 4))) {
      assertThrows(IllegalStateException.class, () -> model.predict(Map.of("features", x)));
    }
  }

}
