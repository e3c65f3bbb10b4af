package org.finetune.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.finetune.data.ImageOps;
import org.finetune.model.FlatSignature;
import org.finetune.model.KerasSavedModel;
import org.finetune.savedmodel.ModelInfo;
import org.finetune.savedmodel.SavedModelDirectory;
import org.finetune.savedmodel.SavedModelInspector;
import org.finetune.testing.Fixture;
import org.finetune.testing.Images;
import org.finetune.train.Fit;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every {@code keras.applications} family, as Keras builds it (scripts/make_family_models.py:
 * random seeded weights, a small input, Keras's own top for 3 classes): finetune names its
 * family, counts what Keras counts, preprocesses as the family module's {@code preprocess_input}
 * does, and a new head goes on the layer whose output {@code include_top=False} returns, then
 * trains with the family's top layer group unfrozen, its loss falling.
 */
class ApplicationFamiliesTest {
  static final List<String> FAMILIES = List.of("VGG19", "ResNet50", "ResNet50V2", "InceptionResNetV2", "Xception",
      "MobileNet", "MobileNetV2", "MobileNetV3Small", "EfficientNetV2B0", "DenseNet121", "NASNetMobile", "ConvNeXtTiny", "RegNetX002");
  @TempDir
  Path tmp;

  static Stream<String> families() {
    return FAMILIES.stream();
  }

  static Path dir(String constructor) {
    Path d = Fixture.projectRoot().resolve("savedmodels/generated/families").resolve(constructor);
    assertTrue(Files.isRegularFile(d.resolve("keras.json")),
        d + " is missing: scripts/make_family_models.py writes it (scripts/test runs it)");
    return d;
  }

  @ParameterizedTest
  @MethodSource("families")
  void familyIsKnownWithKerasTotalsPreprocessingAndFeatureLayer(String constructor) throws IOException {
    Path d = dir(constructor);
    JsonObject keras = JsonParser.parseString(Files.readString(d.resolve("keras.json"))).getAsJsonObject();
    try (KerasSavedModel model = KerasSavedModel.open(d.resolve("keras3_export"))) {
      assertEquals(keras.get("params").getAsLong(), model.info().totalParams(), "params as Keras counts them");
      assertEquals(keras.get("trainable_params").getAsLong(), model.info().trainableParams(), "trainable params");
      assertEquals(keras.get("weight_layers").getAsInt(), model.info().layers().size(), "layers with weights");

      ModelFamily family = ModelFamily.detect(model);
      assertEquals(keras.get("family").getAsString(), family.name());
      assertEquals(keras.get("feature_layer").getAsString(), family.featureLayer().orElse("(none)"), "feature layer");
      assertTrue(family.groups().size() >= 3, "layer groups " + family.groups());
      // What inspect reports, from the directory without loading the model, is the same family.
      SavedModelDirectory files = SavedModelDirectory.open(d.resolve("keras3_export"), SavedModelDirectory.SERVE);
      ModelInfo read = SavedModelInspector.inspect(files, java.util.Optional.empty());
      assertEquals(family, ModelFamily.detect(read, () -> FlatSignature.unloaded(files.metaGraph(), read)),
          "the family read without loading");

      float[] pixels = floats(keras, "preprocess_in");
      float[] expected = floats(keras, "preprocess_out");
      float[] ours = ImageOps.preprocess(pixels.clone(), family.preprocess().orElseThrow());
      for (int i = 0; i < expected.length; i++) {
        assertEquals(expected[i], ours[i], 1e-4 * Math.max(1, Math.abs(expected[i])),
            family.preprocess().get() + " at " + i + " vs Keras's preprocess_input");
      }
    }
  }

  @ParameterizedTest
  @MethodSource("families")
  void newHeadGoesOnTheFeatureLayerAndTrainsWithTheTopGroup(String constructor) throws IOException {
    Path d = dir(constructor);
    JsonObject keras = JsonParser.parseString(Files.readString(d.resolve("keras.json"))).getAsJsonObject();
    String featureLayer = keras.get("feature_layer").getAsString();
    try (KerasSavedModel model = KerasSavedModel.open(d.resolve("keras3_export"))) {
      // Epochs 1-3 train the new head alone (what train --head does by default), epoch 4 the head
      // and the family's top group.
      Path data = Images.folder(tmp.resolve("data"), List.of("a", "b", "c"), 4, 24, 7);
      List<String> messages = new ArrayList<>();
      List<Integer> trained = new ArrayList<>();
      FineTuneResult r = FineTuneJob.builder(model).data(JobData.images(data)).newHead().unfreezeGradually(3)
          .epochs(4).batchSize(4).validationSplit(0).seed(3)
          .listener(new JobListener() {
            @Override
            public void message(String line) {
              messages.add(line);
            }

            @Override
            public void warning(String line) {
              messages.add("warning: " + line);
            }
          })
          .callback(new Fit.Callback() {
            @Override
            public void onEpochEnd(Fit.Control c, Fit.Epoch epoch) {
              trained.add(c.trainer().trainedVariables(c.trainer().stage()).size());
            }
          })
          .build().run();
      String log = String.join("\n", messages);
      String plan = messages.stream().filter(m -> m.startsWith("Plan: ")).findFirst().orElseThrow();
      assertTrue(plan.contains("\"at\":\"" + featureLayer + "\""), plan);
      assertTrue(messages.stream().noneMatch(m -> m.startsWith("warning: the model is of no known family")), log);
      assertTrue(messages.stream().anyMatch(m -> m.contains("(" + keras.get("family").getAsString() + ", input")), log);
      assertEquals(4, r.history().size());
      assertEquals(trained.get(0), trained.get(2), "epochs 1 to 3 train the head alone");
      assertTrue(trained.get(3) > trained.get(0), "epoch 4 trains the top group too: " + trained);
      List<Double> losses = r.history().stream().map(e -> e.logs().get("loss")).toList();
      assertTrue(losses.get(2) < losses.get(0), "the head's loss fell: " + losses);
      assertTrue(Double.isFinite(losses.get(3)), "with the top group: " + losses);
    }
  }

  /**
   * A model of no known family: a new head replaces its final layer, on the output of the layer
   * before it, said in one line (before, the head went on top of the model's output).
   */
  @org.junit.jupiter.api.Test
  void newHeadOfAModelOfNoKnownFamilyReplacesItsFinalLayer() {
    Path dir = Fixture.projectRoot().resolve("savedmodels/generated/arrays/tabular_mlp");
    List<String> messages = new ArrayList<>();
    try (KerasSavedModel model = KerasSavedModel.open(dir.resolve("keras3_export"))) {
      assertEquals("generic", ModelFamily.detect(model).name());
      FineTuneJob.builder(model).data(JobData.arrays(dir.resolve("data/houses.csv"), List.of("price"))).newHead()
          .epochs(1).listener(new JobListener() {
            @Override
            public void message(String line) {
              messages.add(line);
            }
          }).build().run();
    }
    String log = String.join("\n", messages);
    assertTrue(messages.contains("Head: in place of the final layer price (no activation), on the output of layer"
        + " hidden (the model is of no known family)"), log);
    assertTrue(log.contains("\"at\":\"hidden\""), log);
  }

  private static float[] floats(JsonObject o, String key) {
    var a = o.getAsJsonArray(key);
    float[] out = new float[a.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = a.get(i).getAsFloat();
    }
    return out;
  }
}
