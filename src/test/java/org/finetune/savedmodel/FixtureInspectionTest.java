package org.finetune.savedmodel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.finetune.testing.Fixture;
import org.finetune.testing.TreeDigest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** Reading every fixture as data agrees with what Keras and TensorFlow said about it in expected.json. */
class FixtureInspectionTest {
  static Stream<Fixture> fixtures() {
    return Fixture.all();
  }

  /** Fixtures whose Keras layer list is also their forward order (chains, not branching graphs). */
  static Stream<Fixture> chainFixtures() {
    return Fixture.all().filter(f -> !f.id().contains("inception"));
  }

  @ParameterizedTest
  @MethodSource("fixtures")
  void totalsEqualKerasCounts(Fixture fixture) {
    ModelInfo info = SavedModelInspector.inspect(fixture.model());
    JsonObject totals = fixture.expected().getAsJsonObject("totals");
    assertEquals(totals.get("total_params").getAsLong(), info.totalParams(), "total params");
    assertEquals(totals.get("trainable_params").getAsLong(), info.trainableParams(), "trainable params");
    assertEquals(totals.get("non_trainable_params").getAsLong(), info.nonTrainableParams(), "non-trainable params");
  }

  @ParameterizedTest
  @MethodSource("fixtures")
  void layersWithWeightsAndTheirCountsEqualKeras(Fixture fixture) {
    ModelInfo info = SavedModelInspector.inspect(fixture.model());
    assertEquals(new TreeMap<>(kerasLayers(fixture)), new TreeMap<>(ourLayers(info)));
  }

  @ParameterizedTest
  @MethodSource("chainFixtures")
  void layersComeInKerasForwardOrder(Fixture fixture) {
    ModelInfo info = SavedModelInspector.inspect(fixture.model());
    assertEquals(new ArrayList<>(kerasLayers(fixture).keySet()), new ArrayList<>(ourLayers(info).keySet()));
  }

  @ParameterizedTest
  @MethodSource("fixtures")
  void signaturesEqualWhatTensorFlowReports(Fixture fixture) {
    ModelInfo info = SavedModelInspector.inspect(fixture.model());
    JsonObject expected = fixture.expected().getAsJsonObject("signatures");
    assertEquals(new java.util.TreeSet<>(expected.keySet()), new java.util.TreeSet<>(info.signatures().keySet()));
    for (String name : expected.keySet()) {
      SignatureInfo sig = info.signatures().get(name);
      assertEquals(specs(expected.getAsJsonObject(name).getAsJsonObject("inputs")), specs(sig.inputs()), name + " inputs");
      assertEquals(specs(expected.getAsJsonObject(name).getAsJsonObject("outputs")), specs(sig.outputs()), name + " outputs");
    }
  }

  @ParameterizedTest
  @MethodSource("fixtures")
  void exportPathIsRecognised(Fixture fixture) {
    ModelInfo info = SavedModelInspector.inspect(fixture.model());
    assertEquals(fixture.expected().get("export_path").getAsString(), info.exportPath().id());
  }

  @ParameterizedTest
  @MethodSource("fixtures")
  void inspectingWritesNothingIntoTheModel(Fixture fixture) {
    String before = TreeDigest.of(fixture.model());
    SavedModelInspector.inspect(fixture.model());
    assertEquals(before, TreeDigest.of(fixture.model()));
  }

  /**
   * A compiled tf_keras model that was fit saves its optimizer's and metrics' variables beside its
   * weights; they are listed apart and counted nowhere, so the totals are Keras's (the
   * parameterized totals test holds them to expected.json).
   */
  @Test
  void aCompiledModelsOptimizerAndMetricsAreNoParameters() {
    ModelInfo info = SavedModelInspector.inspect(Fixture.of("recurrent/tf_keras").model());
    List<String> state = info.trainingState().stream().map(VariableInfo::name).toList();
    assertTrue(state.contains("iteration") && state.contains("learning_rate") && state.contains("total"), state.toString());
    assertTrue(state.stream().anyMatch(n -> n.startsWith("Adam/m/")), state.toString());
    assertEquals(List.of("lstm", "gru", "value"), info.layers().stream().map(LayerInfo::name).toList());
  }

  @Test
  void aConditionalIsAnOpWithoutGradientAndNamesTheLayersBehindIt() {
    Fixture f = Fixture.graphs().filter(g -> g.id().endsWith("cond")).findFirst().orElseThrow();
    ModelInfo info = SavedModelInspector.inspect(f.model());
    assertEquals(2, info.gradientGaps().size(), info.gradientGaps().toString());
    GradientGap gap = info.gradientGaps().get(0);
    assertEquals("If", gap.op());
    assertEquals(List.of("then_kernel", "else_kernel", "else_bias"), gap.layers());
  }

  /** An IdentityN of tf.custom_gradient has no gradient in the runtime, but the model saved its function. */
  @Test
  void aSavedCustomGradientLeavesNoGap() {
    for (String id : List.of("custom_gradient", "straight_through")) {
      Fixture f = Fixture.graphs().filter(g -> g.id().endsWith(id)).findFirst().orElseThrow();
      assertEquals(List.of(), SavedModelInspector.inspect(f.model()).gradientGaps(), id);
    }
  }

  @ParameterizedTest
  @MethodSource("fixtures")
  void everyFixtureCanBeTrainedThroughout(Fixture fixture) {
    // Including the tf_keras Embedding that reads through ResourceGather: the flattener rewrites it.
    assertEquals(List.of(), SavedModelInspector.inspect(fixture.model()).gradientGaps());
  }

  @Test
  void dropoutSeedStateIsSavedButNotCountedAsParameters() {
    ModelInfo info = SavedModelInspector.inspect(Fixture.of("generated/gpt2_small/keras3_export").model());
    // Two transformer layers with three dropout seeds each, plus the embeddings' dropout.
    assertEquals(7, info.rngState().size());
    assertTrue(info.rngState().stream().allMatch(v -> v.name().endsWith("seed_generator_state")));
  }

  @Test
  void batchNormStatisticsAreNonTrainable() {
    ModelInfo info = SavedModelInspector.inspect(Fixture.of("inception_v3_small/keras3_export").model());
    List<VariableInfo> stats = info.variables().stream()
        .filter(v -> v.name().endsWith("/moving_mean") || v.name().endsWith("/moving_variance")).toList();
    assertEquals(94 * 2, stats.size());
    assertTrue(stats.stream().noneMatch(VariableInfo::trainable));
  }

  @Test
  void opHistogramCountsTheServingFunctionAndWhatItCalls() {
    ModelInfo info = SavedModelInspector.inspect(Fixture.of("vgg16_small/tf_keras").model());
    assertEquals(13L, info.opCounts().get("Conv2D"));
    assertEquals(3L, info.opCounts().get("MatMul"));
    assertEquals(5L, info.opCounts().get("MaxPool"));
  }

  static Map<String, List<Long>> kerasLayers(Fixture fixture) {
    Map<String, List<Long>> out = new LinkedHashMap<>();
    for (JsonElement e : fixture.expected().getAsJsonArray("layers")) {
      JsonObject l = e.getAsJsonObject();
      long t = l.get("trainable_params").getAsLong();
      long n = l.get("non_trainable_params").getAsLong();
      if (t + n > 0) {
        out.put(l.get("name").getAsString(), List.of(t, n));
      }
    }
    return out;
  }

  static Map<String, List<Long>> ourLayers(ModelInfo info) {
    Map<String, List<Long>> out = new LinkedHashMap<>();
    info.layers().forEach(l -> out.put(l.name(), List.of(l.trainableParams(), l.nonTrainableParams())));
    return out;
  }

  private static Map<String, String> specs(JsonObject json) {
    Map<String, String> out = new TreeMap<>();
    json.entrySet().forEach(e -> out.put(e.getKey(), e.getValue().getAsJsonObject().get("dtype").getAsString() + " "
        + e.getValue().getAsJsonObject().get("shape")));
    return out;
  }

  private static Map<String, String> specs(List<TensorSpec> list) {
    Map<String, String> out = new TreeMap<>();
    list.forEach(t -> out.put(t.key(), t.dtype() + " " + t.shape().toString().replace(" ", "")));
    return out;
  }
}
