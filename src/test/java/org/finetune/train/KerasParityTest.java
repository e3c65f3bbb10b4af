package org.finetune.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.Gson;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.finetune.data.NpyArray;
import org.finetune.model.KerasSavedModel;
import org.finetune.savedmodel.VariableInfo;
import org.finetune.testing.Fixture;
import org.finetune.testing.Python;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Keras is the oracle: the same model, batch and hyperparameters trained by
 * scripts/reference_train.py (the Keras model called with {@code training=False} under
 * tf.GradientTape, Keras's loss and Keras's optimizer) and by our Trainer on the SavedModel give
 * the same losses and the same updated variables after 1 and 5 steps (1 for the full-size models),
 * for SGD with momentum and for Adam; everything not trained stays bit-identical.
 */
@Tag("long")
class KerasParityTest {
  static final double TOLERANCE = 1e-5;
  /**
   * Adam on GPT-2 cannot be held to 1e-5: Keras does not agree with itself that closely. Adam
   * divides each gradient element by its own running magnitude, so elements whose gradient is
   * near epsilon turn float rounding into visible steps, and GPT-2's gradients round differently
   * with the kernel library: TensorFlow Python runs some of its matrix products with oneDNN, TF
   * Java's runtime runs the same ops (same inputs) with Eigen (measured on BatchMatMulV2; no
   * gradient function differs). So for Adam on GPT-2 the test runs Keras with oneDNN on and off
   * (both named, whatever the CPU's default), measures how far Keras moves with the kernel library
   * alone (the floor), and holds Java to
   * twice that floor: Java's kernels are a third set, its distance to either Keras run is the
   * sum of two such differences at most. SGD (no per-element normalisation) stays at 1e-5.
   */
  static final double FLOOR_FACTOR = 2;
  static final int STEPS = 5;
  static final int FULL_SIZE_STEPS = 1;

  @TempDir
  Path tmp;

  static Stream<Arguments> settings() {
    return Stream.of(
        Arguments.of("vgg16_small/keras3_export", "all", ""),
        Arguments.of("vgg16_small/keras3_export", "block:block5", ""),
        Arguments.of("vgg16_small/tf_keras", "block:block5", ""),
        Arguments.of("vgg16_small/keras3_export", "head", "at=block5_pool,hidden=16,classes=3"),
        Arguments.of("vgg16_small/keras3_export", "all", "at=block5_pool,hidden=16,classes=3"),
        Arguments.of("inception_v3_small/keras3_export", "all", ""),
        Arguments.of("inception_v3_small/keras3_export", "block:mixed9", ""),
        Arguments.of("inception_v3_small/keras3_export", "head", "classes=4"),
        Arguments.of("generated/gpt2_small/keras3_export", "all", ""),
        Arguments.of("generated/gpt2_small/keras3_export", "block:transformer_layer_1", ""),
        Arguments.of("generated/gpt2_small/keras3_export", "head", "at=layer_norm,hidden=8,classes=2"),
        Arguments.of("generated/vgg16/keras3_export", "all", ""),
        Arguments.of("generated/vgg16/keras3_export", "head", "at=block5_pool,classes=3"),
        Arguments.of("generated/gpt2_base/keras3_export", "all", ""),
        Arguments.of("generated/gpt2_base/keras3_export", "head", "at=layer_norm,classes=2"));
  }

  /** A head written as {@code at=LAYER,hidden=N,classes=N} (all optional but classes); empty: none. */
  static java.util.Optional<HeadSpec> head(String text) {
    if (text.isEmpty()) {
      return java.util.Optional.empty();
    }
    Map<String, String> kv = new LinkedHashMap<>();
    for (String part : text.split(",")) {
      String[] p = part.split("=", 2);
      kv.put(p[0], p[1]);
    }
    HeadSpec h = HeadSpec.classifier(Integer.parseInt(kv.get("classes")));
    if (kv.containsKey("at")) {
      h = h.at(kv.get("at"));
    }
    if (kv.containsKey("hidden")) {
      h = h.hidden(Integer.parseInt(kv.get("hidden")), 0);
    }
    return java.util.Optional.of(h);
  }

  /**
   * One optimizer setting; {@code clip} and {@code l2sp} are 0 when off. The oracle gets the
   * optimizer as a plan file spells it (Keras's parameter names), clipping as Keras's
   * {@code global_clipnorm}.
   */
  record Case(String name, OptimizerSpec optimizer, double clip, double l2sp) {
    Case(String name, OptimizerSpec optimizer) {
      this(name, optimizer, 0, 0);
    }

    JsonObject json() {
      JsonObject o = PlanJson.optimizer(optimizer);
      if (clip > 0) {
        o.addProperty("global_clipnorm", clip);
      }
      return o;
    }
  }

  /** AdamW, global-norm clipping and L2-SP, on the small VGG16 trained throughout. */
  static List<Case> extendedCases() {
    return List.of(
        new Case("adamw", new OptimizerSpec.AdamW(0.001, 0.9, 0.999, 1e-7, 0.05, true)),
        new Case("sgd_clipped", new OptimizerSpec.Sgd(0.01, 0.9, false), 0.05, 0),
        new Case("sgd_l2sp", new OptimizerSpec.Sgd(0.05, 0, false), 0, 0.5));
  }

  static List<Case> cases(String fixtureId, String selector) {
    List<Case> out = new java.util.ArrayList<>(cases());
    if (fixtureId.equals("vgg16_small/keras3_export") && selector.equals("all")) {
      out.addAll(extendedCases());
    }
    return out;
  }

  static List<Case> cases() {
    return List.of(new Case("sgd_momentum", new OptimizerSpec.Sgd(0.01, 0.9, false)),
        new Case("adam", new OptimizerSpec.Adam(0.001, 0.9, 0.999, 1e-7)));
  }

  @ParameterizedTest(name = "{0} {1} {2}")
  @MethodSource("settings")
  void sgdMomentumAndAdamMatchKerasAfterOneAndFiveSteps(String fixtureId, String selector, String headText)
      throws IOException {
    Fixture fixture = Fixture.of(fixtureId);
    java.util.Optional<HeadSpec> head = head(headText);
    // GPT-2 trains its causal-LM loss; InceptionV3 (no top) regresses its feature maps; VGG16 classifies.
    JsonObject outputs = fixture.expected().getAsJsonObject("signatures").getAsJsonObject("serving_default")
        .getAsJsonObject("outputs");
    int outputRank = outputs.getAsJsonObject(outputs.keySet().iterator().next()).getAsJsonArray("shape").size();
    LossSpec loss = head.isPresent() || (!fixtureId.contains("gpt2") && outputRank == 2)
        ? LossSpec.SPARSE_CATEGORICAL_CROSSENTROPY
        : fixtureId.contains("gpt2") ? LossSpec.CAUSAL_LM : LossSpec.MSE;
    Batch batch = batch(fixture, loss, head.map(HeadSpec::classes).orElse(10));

    // Which variables the stage trains, as our library resolves the selector, and the new head's
    // initial weights (the Keras side starts from the same).
    List<String> trainable;
    Map<String, NpyArray> headStart;
    try (KerasSavedModel model = KerasSavedModel.open(fixture.model());
        Trainer probe = new Trainer(model, plan(loss, cases().get(0), selector, head))) {
      trainable = probe.trainedVariables(0);
      headStart = probe.values(probe.headVariables());
    }

    int steps = fixtureId.contains("small") ? STEPS : FULL_SIZE_STEPS;
    Path out = tmp.resolve("keras");
    Path planFile = writePlan(fixture, batch, loss, trainable, steps, selector, head, headStart);
    // Keras against itself with the other CPU kernel library, where the tolerance rests on it. Both
    // libraries are named explicitly: TensorFlow's default turns oneDNN on only on some CPUs (off on
    // an AVX2-only AMD EPYC), and two runs with the same default would measure no floor at all.
    boolean floorNeeded = fixtureId.contains("gpt2") && head.isEmpty();
    if (floorNeeded) {
      Python.run("reference_train.py", "--plan", planFile.toString(), "--out", out.toString(), "--onednn", "on");
    } else {
      Python.run("reference_train.py", "--plan", planFile.toString(), "--out", out.toString());
    }
    Path floorOut = tmp.resolve("keras_onednn_off");
    if (floorNeeded) {
      Python.run("reference_train.py", "--plan", planFile.toString(), "--out", floorOut.toString(), "--onednn", "off",
          "--cases", "adam");
    }

    // Variables whose gradient is zero in exact arithmetic (GPT-2's attention key bias: softmax
    // ignores a shift common to a row) get rounding noise as gradient in both implementations;
    // found from Keras's first SGD step, they are checked for staying put, not for equal noise.
    java.util.Set<String> zeroGradient = new java.util.TreeSet<>();
    for (Case c : cases(fixtureId, selector)) {
      JsonObject result = JsonParser.parseString(Files.readString(out.resolve(c.name()).resolve("result.json")))
          .getAsJsonObject();
      try (KerasSavedModel model = KerasSavedModel.open(fixture.model());
          Trainer trainer = new Trainer(model, plan(loss, c, selector, head))) {
        List<String> all = new java.util.ArrayList<>(model.info().variables().stream()
            .filter(v -> !v.handle().isEmpty()).map(VariableInfo::name).toList());
        all.addAll(trainer.headVariables());
        assertEquals(headStart.keySet(), new java.util.LinkedHashSet<>(trainer.headVariables()));
        for (String name : trainer.headVariables()) {
          assertArrayEquals(headStart.get(name).data(), trainer.values(List.of(name)).get(name).data(),
              "a head's start is fixed by its seed: " + name);
        }
        Map<String, NpyArray> before = trainer.values(all);
        double worstVariable = 0;
        double worstLoss = 0;
        double worstFloor = 0;
        Map<String, Double> pending = new LinkedHashMap<>();
        JsonArray kerasLosses = result.getAsJsonArray("losses");
        for (int step = 1; step <= steps; step++) {
          StepResult r = trainer.step(batch);
          double kerasLoss = kerasLosses.get(step - 1).getAsDouble();
          double lossDiff = Math.abs(r.loss() - kerasLoss) / Math.abs(kerasLoss);
          worstLoss = Math.max(worstLoss, lossDiff);
          assertTrue(lossDiff <= TOLERANCE, c.name() + " step " + step + ": loss " + r.loss() + " vs Keras " + kerasLoss);
          JsonObject recorded = result.getAsJsonObject("variables").getAsJsonObject(String.valueOf(step));
          if (recorded == null) {
            continue;
          }
          Map<String, NpyArray> now = trainer.values(trainable);
          for (String name : trainable) {
            NpyArray keras = NpyArray.read(out.resolve(c.name()).resolve(recorded.get(name).getAsString()));
            if (c.name().equals("sgd_momentum") && c.optimizer() instanceof OptimizerSpec.Sgd sgd && step == 1
                && maxAbsDiff(keras.toDoubles(), before.get(name).toDoubles()) <= 1e-7 * sgd.learningRate()) {
              zeroGradient.add(name);
            }
            if (zeroGradient.contains(name)) {
              // Adam turns noise into steps of up to lr; both must stay within that of the start.
              double bound = c.optimizer().learningRate() * step * 1.01 + 1e-6 * sgdRate();
              assertTrue(maxAbsDiff(now.get(name).toDoubles(), before.get(name).toDoubles()) <= bound, name);
              assertTrue(maxAbsDiff(keras.toDoubles(), before.get(name).toDoubles()) <= bound, name);
              continue;
            }
            double diff = difference(name, keras.toDoubles(), now.get(name).toDoubles(), before, all);
            if (floorNeeded && c.name().equals("adam")) {
              NpyArray other = NpyArray.read(floorOut.resolve(c.name()).resolve(recorded.get(name).getAsString()));
              worstFloor = Math.max(worstFloor, difference(name, keras.toDoubles(), other.toDoubles(), before, all));
              pending.put(step + " " + name, diff);
              worstVariable = Math.max(worstVariable, diff);
              continue;
            }
            worstVariable = Math.max(worstVariable, diff);
            assertTrue(diff <= TOLERANCE, c.name() + " step " + step + " " + name + ": relative difference " + diff);
          }
        }
        double floorTolerance = Math.max(TOLERANCE, FLOOR_FACTOR * worstFloor);
        for (Map.Entry<String, Double> e : pending.entrySet()) {
          assertTrue(e.getValue() <= floorTolerance, c.name() + " step " + e.getKey() + ": relative difference "
              + e.getValue() + ", Keras against itself (oneDNN on/off) " + worstFloor);
        }
        Map<String, NpyArray> after = trainer.values(all);
        int frozen = 0;
        for (String name : all) {
          if (!trainable.contains(name)) {
            assertArrayEquals(before.get(name).data(), after.get(name).data(), name + " must not change");
            frozen++;
          } else {
            assertTrue(!java.util.Arrays.equals(before.get(name).data(), after.get(name).data()), name + " must change");
          }
        }
        System.out.printf("keras parity %-36s %-26s %-12s %d trained, %d unchanged: worst variable %.3g, worst loss %.3g%s%s%n",
            fixtureId, selector + (headText.isEmpty() ? "" : " +head(" + headText + ")"), c.name(), trainable.size(), frozen, worstVariable, worstLoss,
            pending.isEmpty() ? "" : String.format(" (Keras against itself, oneDNN on/off: %.3g)", worstFloor),
            zeroGradient.isEmpty() ? "" : " (zero-gradient by construction: " + zeroGradient + ")");
      }
    }
  }

  /**
   * max |a - b| / max |a|; for a variable that starts at zero (bias, normalisation offset) the
   * scale is its layer's largest starting weight, since after a few steps its own size (O(lr)) is
   * no scale for rounding.
   */
  static double difference(String name, double[] a, double[] b, Map<String, NpyArray> before, List<String> all) {
    if (maxAbs(before.get(name).toDoubles()) != 0) {
      return NpyArray.relativeDifference(a, b);
    }
    String layer = name.substring(0, name.lastIndexOf('/'));
    double scale = 0;
    for (String other : all) {
      if (other.startsWith(layer + "/")) {
        scale = Math.max(scale, maxAbs(before.get(other).toDoubles()));
      }
    }
    return maxAbsDiff(a, b) / Math.max(scale, maxAbs(a));
  }

  static TrainingPlan plan(LossSpec loss, Case c, String selector, java.util.Optional<HeadSpec> head) {
    TrainingPlan.Builder b = TrainingPlan.builder().loss(loss).optimizer(c.optimizer())
        .stage(Stage.of(Selector.parse(selector))).l2sp(c.l2sp());
    head.ifPresent(b::head);
    if (c.clip() > 0) {
      b.clipGlobalNorm(c.clip());
    }
    return b.build();
  }

  private Batch batch(Fixture fixture, LossSpec loss, int classes) throws IOException {
    JsonObject sample = fixture.expected().getAsJsonObject("sample");
    Map<String, NpyArray> inputs = new LinkedHashMap<>();
    for (String key : sample.getAsJsonObject("inputs").keySet()) {
      inputs.put(key, NpyArray.read(fixture.sampleFile(sample.getAsJsonObject("inputs").get(key).getAsString())));
    }
    if (loss == LossSpec.CAUSAL_LM) {
      return Batch.unlabelled(inputs);
    }
    if (fixture.id().contains("vgg16_small")) {
      // VGG16 sees "caffe"-preprocessed pixels (about -124..152), not [-1, 1]: scale the sample so
      // that gradients reach the first blocks with realistic magnitudes.
      inputs.replaceAll((k, v) -> scaled(v, 100f));
    }
    if (loss == LossSpec.MSE) {
      NpyArray like = NpyArray.read(fixture.sampleFile(sample.getAsJsonObject("outputs").get("output_0").getAsString()));
      java.util.Random random = new java.util.Random(1234);
      ByteBuffer b = ByteBuffer.allocate((int) like.size() * 4).order(ByteOrder.LITTLE_ENDIAN);
      for (int i = 0; i < like.size(); i++) {
        b.putFloat((float) random.nextGaussian());
      }
      return Batch.of(inputs, new NpyArray("float32", like.shape(), b.array()));
    }
    long n = inputs.values().iterator().next().shape()[0];
    ByteBuffer b = ByteBuffer.allocate((int) n * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < n; i++) {
      b.putInt((3 + 4 * i) % classes);
    }
    return Batch.of(inputs, new NpyArray("int32", new long[] {n}, b.array()));
  }

  private static NpyArray scaled(NpyArray a, float factor) {
    ByteBuffer in = ByteBuffer.wrap(a.data()).order(ByteOrder.LITTLE_ENDIAN);
    ByteBuffer out = ByteBuffer.allocate(a.data().length).order(ByteOrder.LITTLE_ENDIAN);
    while (in.hasRemaining()) {
      out.putFloat(in.getFloat() * factor);
    }
    return new NpyArray(a.dtype(), a.shape(), out.array());
  }

  private Path writePlan(Fixture fixture, Batch batch, LossSpec loss, List<String> trainable, int steps,
      String selectorOf, java.util.Optional<HeadSpec> head, Map<String, NpyArray> headStart) throws IOException {
    JsonObject plan = new JsonObject();
    plan.addProperty("model", fixture.model().toString());
    // The Keras model itself where we have it: Keras then computes exactly as model.fit would.
    Path keras = fixture.root().getParent().resolve("keras").resolve("model.keras");
    if (fixture.id().endsWith("tf_keras")) {
      plan.addProperty("keras_model", fixture.model().toString());
      plan.addProperty("keras_flavor", "tf_keras");
    } else if (Files.isRegularFile(keras)) {
      plan.addProperty("keras_model", keras.toString());
      plan.addProperty("keras_flavor", "keras3");
    } else {
      throw new IllegalStateException(keras + " is missing: run scripts/test, which writes it");
    }
    plan.addProperty("signature", "serving_default");
    JsonObject inputs = new JsonObject();
    for (Map.Entry<String, NpyArray> e : batch.inputs().entrySet()) {
      Path f = tmp.resolve("input_" + e.getKey() + ".npy");
      e.getValue().write(f);
      inputs.addProperty(e.getKey(), f.toString());
    }
    plan.add("inputs", inputs);
    if (batch.targets().isPresent()) {
      Path f = tmp.resolve("targets.npy");
      batch.targets().get().write(f);
      plan.addProperty("targets", f.toString());
    }
    plan.addProperty("loss", loss.kerasName());
    if (head.isPresent()) {
      JsonObject h = new JsonObject();
      head.get().at().ifPresent(at -> h.addProperty("at", at));
      h.addProperty("hidden", head.get().hiddenUnits());
      h.addProperty("classes", head.get().classes());
      h.addProperty("activation", head.get().activation().kerasName());
      if (batch.inputs().containsKey("padding_mask")) {
        h.addProperty("mask_input", "padding_mask");
      }
      JsonObject initial = new JsonObject();
      for (Map.Entry<String, NpyArray> e : headStart.entrySet()) {
        Path f = tmp.resolve("head_" + e.getKey().replace('/', '_') + ".npy");
        e.getValue().write(f);
        initial.addProperty(e.getKey(), f.toString());
      }
      h.add("initial", initial);
      plan.add("head", h);
    }
    JsonArray cases = new JsonArray();
    for (Case c : cases(fixture.id(), selectorOf)) {
      JsonObject o = new JsonObject();
      o.addProperty("name", c.name());
      o.addProperty("steps", steps);
      JsonArray record = new JsonArray();
      record.add(1);
      record.add(steps);
      o.add("record", record);
      o.add("optimizer", c.json());
      JsonArray vars = new JsonArray();
      trainable.forEach(vars::add);
      o.add("trainable", vars);
      o.addProperty("l2sp", c.l2sp());
      cases.add(o);
    }
    plan.add("cases", cases);
    Path file = tmp.resolve("plan.json");
    Files.writeString(file, new Gson().toJson(plan));
    return file;
  }

  private static double sgdRate() {
    return cases().get(0).optimizer().learningRate();
  }

  static double maxAbs(double[] a) {
    double m = 0;
    for (double x : a) {
      m = Math.max(m, Math.abs(x));
    }
    return m;
  }

  static double maxAbsDiff(double[] a, double[] b) {
    double m = 0;
    for (int i = 0; i < a.length; i++) {
      m = Math.max(m, Math.abs(a[i] - b[i]));
    }
    return m;
  }

}
