package org.finetune.graph;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.finetune.data.NpyArray;
import org.finetune.model.FlatSignature;
import org.finetune.model.KerasSavedModel;
import org.finetune.savedmodel.VariableInfo;
import org.finetune.testing.Fixture;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.tensorflow.Tensor;

/** The flattened signature computes what the original signature computes, on every fixture. */
class FlattenerParityTest {
  static final double TOLERANCE = 1e-6;

  static Stream<Fixture> fixtures() {
    return Stream.concat(Fixture.all(), Fixture.graphs());
  }

  @ParameterizedTest
  @MethodSource("fixtures")
  void flatOutputsEqualTheOriginalSignature(Fixture fixture) throws IOException {
    JsonObject sample = fixture.expected().getAsJsonObject("sample");
    String signature = sample.get("signature").getAsString();
    try (KerasSavedModel model = KerasSavedModel.open(fixture.model())) {
      FlatSignature flat = model.flatSignature(signature);
      Map<String, Tensor> original = new LinkedHashMap<>();
      Map<String, Tensor> flatFeeds = new LinkedHashMap<>();
      try {
        for (String key : sample.getAsJsonObject("inputs").keySet()) {
          NpyArray x = NpyArray.read(fixture.sampleFile(sample.getAsJsonObject("inputs").get(key).getAsString()));
          original.put(key, x.toTensor());
          flatFeeds.put(flat.inputs().get(key), x.toTensor());
        }
        Map<String, Tensor> expected = model.predict(signature, original);
        List<String> fetches = new ArrayList<>(flat.outputs().values());
        Map<String, Tensor> actual = model.run(flatFeeds, fetches);
        try {
          for (String key : flat.outputs().keySet()) {
            double diff = NpyArray.relativeDifference(NpyArray.of(expected.get(key)).toDoubles(),
                NpyArray.of(actual.get(flat.outputs().get(key))).toDoubles());
            System.out.printf("flat parity %-40s %-12s %.3g (%d flat nodes)%n", fixture, key, diff, flat.nodeCount());
            assertTrue(diff <= TOLERANCE, fixture + " " + key + ": " + diff);
          }
        } finally {
          expected.values().forEach(Tensor::close);
          actual.values().forEach(Tensor::close);
        }
      } finally {
        original.values().forEach(Tensor::close);
        flatFeeds.values().forEach(Tensor::close);
      }
      // Every variable the signature reads has exactly one shared read in the flat graph.
      long read = model.info().variables().stream().filter(v -> !v.handle().isEmpty()).count();
      assertEquals(read, flat.reads().size());
      for (VariableInfo v : model.info().variables()) {
        if (!v.handle().isEmpty()) {
          assertTrue(flat.reads().containsKey(v.handle()), v.name());
        }
      }
    }
  }

}
