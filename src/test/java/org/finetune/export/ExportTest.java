package org.finetune.export;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.Gson;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.finetune.data.NpyArray;
import org.finetune.model.KerasSavedModel;
import org.finetune.savedmodel.VariableInfo;
import org.finetune.testing.Fixture;
import org.finetune.testing.Python;
import org.finetune.testing.TreeDigest;
import org.finetune.train.Batch;
import org.finetune.train.HeadSpec;
import org.finetune.train.LossSpec;
import org.finetune.train.OptimizerSpec;
import org.finetune.train.Trainer;
import org.finetune.train.TrainingPlan;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.tensorflow.Tensor;
import org.tensorflow.proto.FingerprintDef;

/**
 * Exports load back in Python: Java trains two steps, exports, and Python's own loaders
 * ({@code tf.saved_model.load}, {@code keras.layers.TFSMLayer}, {@code tf_keras.models.load_model})
 * compute Java's outputs and hold Java's weights; the base model's directory is never touched.
 */
public class ExportTest {
  static final double TOLERANCE = 1e-5;

  @TempDir
  Path tmp;

  /** For other tests that reuse {@link #check}: where its files go. */
  public ExportTest withTmp(Path dir) {
    this.tmp = dir;
    return this;
  }

  static Stream<String> sameArchitectureFixtures() {
    return Stream.of("vgg16_small/keras3_export", "vgg16_small/tf_saved_model", "vgg16_small/tf_keras",
        "inception_v3_small/keras3_export", "text_embedding/tf_keras", "tf1_linear/tf1",
        "generated/gpt2_small/keras3_export");
  }

  static Stream<Arguments> heads() {
    return Stream.of(
        Arguments.of("vgg16_small/keras3_export", HeadSpec.classifier(3).at("block5_pool").hidden(8, 0.25)),
        Arguments.of("vgg16_small/tf_keras", HeadSpec.classifier(3).at("block5_pool")),
        Arguments.of("vgg16_small/tf_saved_model", HeadSpec.classifier(3).at("block4_pool")),
        Arguments.of("text_embedding/tf_keras", HeadSpec.classifier(2)),
        Arguments.of("tf1_linear/tf1", HeadSpec.classifier(2).hidden(4, 0)),
        Arguments.of("inception_v3_small/keras3_export", HeadSpec.classifier(4)),
        Arguments.of("generated/gpt2_small/keras3_export", HeadSpec.classifier(2).at("layer_norm")));
  }

  static Map<String, NpyArray> sampleInputs(Fixture f) throws IOException {
    JsonObject inputs = f.expected().getAsJsonObject("sample").getAsJsonObject("inputs");
    Map<String, NpyArray> out = new LinkedHashMap<>();
    for (String key : inputs.keySet()) {
      out.put(key, NpyArray.read(f.sampleFile(inputs.get(key).getAsString())));
    }
    return out;
  }

  public static NpyArray randomLike(NpyArray like, long seed) {
    Random random = new Random(seed);
    ByteBuffer b = ByteBuffer.allocate((int) like.size() * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (long i = 0; i < like.size(); i++) {
      b.putFloat((float) random.nextGaussian());
    }
    return new NpyArray("float32", like.shape(), b.array());
  }

  static NpyArray labels(long n, int classes) {
    ByteBuffer b = ByteBuffer.allocate((int) n * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < n; i++) {
      b.putInt((1 + 2 * i) % classes);
    }
    return new NpyArray("int32", new long[] {n}, b.array());
  }

  /** Java's outputs of the model's signature, through the base graph (not the flat one). */
  public static Map<String, NpyArray> signatureOutputs(KerasSavedModel model, Map<String, NpyArray> inputs) {
    Map<String, Tensor> feeds = new LinkedHashMap<>();
    inputs.forEach((k, v) -> feeds.put(k, v.toTensor()));
    Map<String, NpyArray> out = new LinkedHashMap<>();
    try {
      Map<String, Tensor> result = model.predict("serving_default", feeds);
      result.forEach((k, t) -> {
        out.put(k, NpyArray.of(t));
        t.close();
      });
    } finally {
      feeds.values().forEach(Tensor::close);
    }
    return out;
  }

  public JsonObject check(Path export, Map<String, NpyArray> inputs, Path out, boolean tfKeras) throws IOException {
    return check(export, null, inputs, out, tfKeras);
  }

  /** Python's check of {@code export}; with a {@code base}, which TFSMLayer endpoints the base takes too. */
  public JsonObject check(Path export, Path base, Map<String, NpyArray> inputs, Path out, boolean tfKeras)
      throws IOException {
    JsonObject spec = new JsonObject();
    spec.addProperty("export", export.toString());
    spec.addProperty("signature", "serving_default");
    JsonObject in = new JsonObject();
    for (Map.Entry<String, NpyArray> e : inputs.entrySet()) {
      Path f = tmp.resolve("in_" + e.getKey() + ".npy");
      e.getValue().write(f);
      in.addProperty(e.getKey(), f.toString());
    }
    spec.add("inputs", in);
    spec.addProperty("out", out.toString());
    spec.addProperty("tfsm", true);
    if (base != null) {
      spec.addProperty("base", base.toString());
    }
    spec.addProperty("tf_keras", tfKeras);
    spec.addProperty("fingerprint", true);
    Path file = tmp.resolve("check_" + out.getFileName() + ".json");
    Files.writeString(file, new Gson().toJson(spec));
    Python.run("check_export.py", file.toString());
    return spec;
  }

  /** The TFSMLayer endpoints Keras's own export of a model with this many inputs takes. */
  public static Set<String> kerasEndpoints(int inputs) {
    // TFSMLayer passes its input as one positional argument: a dict cannot fill a signature's
    // several arguments, in Keras's exports as in ours; "serve" takes the dict.
    return inputs == 1 ? Set.of("serving_default", "serve") : Set.of("serve");
  }

  /** The endpoints the check found TFSMLayer taking, under {@code tfsm} (the export) or {@code base_tfsm}. */
  public static Set<String> endpointsTaken(Path out, String under) {
    Set<String> taken = new TreeSet<>();
    for (String endpoint : List.of("serving_default", "serve")) {
      Path dir = out.resolve(under).resolve(endpoint);
      if (Files.isDirectory(dir) && !Files.exists(dir.resolve("UNSUPPORTED"))) {
        taken.add(endpoint);
      }
    }
    return taken;
  }

  /**
   * Runs scripts/check_export.py on an export with one input array (tf.saved_model.load and
   * TFSMLayer; no tf_keras, no fingerprint); its outputs go under {@code out}.
   */
  public static void pythonLoads(Path export, String input, Path array, Path out, Path specFile) throws IOException {
    JsonObject spec = new JsonObject();
    spec.addProperty("export", export.toString());
    spec.addProperty("signature", "serving_default");
    JsonObject inputs = new JsonObject();
    inputs.addProperty(input, array.toString());
    spec.add("inputs", inputs);
    spec.addProperty("out", out.toString());
    spec.addProperty("tfsm", true);
    spec.addProperty("tf_keras", false);
    spec.addProperty("fingerprint", false);
    Files.writeString(specFile, new Gson().toJson(spec));
    Python.run("check_export.py", specFile.toString());
  }

  public static double compareOutputs(String id, Map<String, NpyArray> javaOutputs, Path out, int inputs)
      throws IOException {
    return compareOutputs(id, javaOutputs, out, kerasEndpoints(inputs));
  }

  /**
   * Python's outputs (tf.saved_model.load, and TFSMLayer on every endpoint it takes) against
   * Java's; returns the worst relative difference. TFSMLayer must take each of {@code endpoints}.
   */
  public static double compareOutputs(String id, Map<String, NpyArray> javaOutputs, Path out, Set<String> endpoints)
      throws IOException {
    for (String endpoint : endpoints) {
      Path unsupported = out.resolve("tfsm").resolve(endpoint).resolve("UNSUPPORTED");
      assertFalse(Files.exists(unsupported), id + ": TFSMLayer(call_endpoint=\"" + endpoint + "\") must wrap the export: "
          + (Files.exists(unsupported) ? Files.readString(unsupported) : ""));
    }
    double worst = 0;
    for (Map.Entry<String, NpyArray> e : javaOutputs.entrySet()) {
      NpyArray python = NpyArray.read(out.resolve("loaded").resolve(e.getKey() + ".npy"));
      double d = NpyArray.relativeDifference(e.getValue().toDoubles(), python.toDoubles());
      assertTrue(d <= TOLERANCE, id + " " + e.getKey() + ": tf.saved_model.load differs from Java by " + d);
      worst = Math.max(worst, d);
      for (String endpoint : endpointsTaken(out, "tfsm")) {
        NpyArray layer = NpyArray.read(out.resolve("tfsm").resolve(endpoint).resolve(e.getKey() + ".npy"));
        double t = NpyArray.relativeDifference(e.getValue().toDoubles(), layer.toDoubles());
        assertTrue(t <= TOLERANCE, id + " " + e.getKey() + ": TFSMLayer(" + endpoint + ") differs from Java by " + t);
        worst = Math.max(worst, t);
      }
    }
    return worst;
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("sameArchitectureFixtures")
  void sameArchitectureExportsLoadInPythonWithJavasOutputsAndWeights(String id) throws IOException {
    Fixture fixture = Fixture.of(id);
    String before = TreeDigest.of(fixture.model());
    Map<String, NpyArray> inputs = sampleInputs(fixture);
    Path export = tmp.resolve("export");
    Map<String, NpyArray> javaOutputs;
    Map<String, NpyArray> javaWeights;
    String sameArchitecturePython;
    Map<String, NpyArray> startWeights;
    List<String> names;
    try (KerasSavedModel model = KerasSavedModel.open(fixture.model())) {
      if (id.endsWith("keras3_export")) {
        // The saver's copies of the weights are freed once loaded (the export writes them again).
        assertFalse(model.saverAliases().isEmpty(), id + ": a Keras 3 export's saver writes copies of the weights");
        org.tensorflow.GraphOperation alias = model.graph().operation(model.saverAliases().keySet().iterator().next());
        org.tensorflow.op.Ops tf = org.tensorflow.op.Ops.create(model.graph()).withSubScope("test_alias_read");
        var read = tf.readVariableOp(alias.output(0),
            org.finetune.graph.TensorTypes.of(alias.attributes().getAttrType("dtype")));
        assertThrows(org.tensorflow.exceptions.TensorFlowException.class,
            () -> model.session().runner().fetch(read).run().close(), id + ": " + alias.name() + " still held");
      }
      boolean lm = id.contains("gpt2");
      TrainingPlan plan = TrainingPlan.builder().loss(lm ? LossSpec.CAUSAL_LM : LossSpec.MSE)
          .optimizer(new OptimizerSpec.Sgd(0.01, 0.9, false)).build();
      try (Trainer trainer = new Trainer(model, plan)) {
        names = model.info().variables().stream().filter(v -> !v.handle().isEmpty()).map(VariableInfo::name).toList();
        startWeights = trainer.values(names);
        Batch batch = lm ? Batch.unlabelled(inputs) : Batch.of(inputs, randomLike(trainer.predict(inputs), 7));
        trainer.step(batch);
        trainer.step(batch);
        javaWeights = trainer.values(names);
        javaOutputs = signatureOutputs(model, inputs);
        ExportResult result = Exporter.export(trainer, export, ExportOptions.defaults());
        assertEquals(ExportResult.Mode.SAME_ARCHITECTURE, result.mode());
        sameArchitecturePython = result.python();
      }
    }
    Path out = tmp.resolve("python");
    check(export, fixture.model(), inputs, out, id.endsWith("tf_keras"));

    // TFSMLayer takes every endpoint of the export that it takes of the base model.
    Set<String> baseEndpoints = endpointsTaken(out, "base_tfsm");
    double worst = compareOutputs(id, javaOutputs, out, baseEndpoints);
    // Every variable Python restores (aliases included) holds Java's trained value, bit for bit;
    // so does every checkpoint tensor named like a variable (TF1 models restore no objects).
    java.util.Set<String> found = new java.util.HashSet<>();
    int checked = 0;
    for (String index : List.of("variables.json", "checkpoint.json")) {
      for (JsonElement e : JsonParser.parseString(Files.readString(out.resolve(index))).getAsJsonArray()) {
        String name = e.getAsJsonArray().get(0).getAsString();
        NpyArray java = javaWeights.get(name);
        if (java == null) {
          continue;
        }
        NpyArray python = NpyArray.read(out.resolve(e.getAsJsonArray().get(1).getAsString()));
        assertArrayEquals(java.data(), python.data(), id + ": Python restored a stale " + name + " (" + index + ")");
        found.add(name);
        checked++;
      }
    }
    assertEquals(new java.util.TreeSet<>(names), new java.util.TreeSet<>(found), id + ": variables Python restored");
    assertTrue(names.stream().anyMatch(n -> !java.util.Arrays.equals(javaWeights.get(n).data(),
        startWeights.get(n).data())), id + ": training moved no weight, so the export proves nothing");
    if (id.endsWith("tf_keras")) {
      assertTrue(sameArchitecturePython.startsWith("tf_keras.models.load_model(\"" + export.toAbsolutePath().normalize()
          + "\")"), sameArchitecturePython);
      int weights = 0;
      for (JsonElement e : JsonParser.parseString(Files.readString(out.resolve("tf_keras.json"))).getAsJsonArray()) {
        String name = e.getAsJsonArray().get(0).getAsString();
        NpyArray java = javaWeights.get(name);
        if (java != null) {
          assertArrayEquals(java.data(), NpyArray.read(out.resolve(e.getAsJsonArray().get(1).getAsString())).data(),
              "tf_keras.models.load_model: " + name);
          weights++;
        }
      }
      assertEquals(names.size(), weights, "tf_keras loads every trained weight");
    }
    if (Files.isRegularFile(fixture.model().resolve("fingerprint.pb"))) {
      FingerprintDef ours = FingerprintDef.parseFrom(Files.readAllBytes(export.resolve("fingerprint.pb")));
      FingerprintDef tf = FingerprintDef.parseFrom(Files.readAllBytes(out.resolve("fingerprint.pb")));
      assertEquals(tf, ours, "fingerprint.pb is what TensorFlow computes for the export");
    }
    assertEquals(before, TreeDigest.of(fixture.model()), "the base model's directory is unchanged");
    System.out.printf("export same-architecture %-36s python vs java worst %.3g; %d restored variables equal;"
        + " TFSMLayer endpoints: base %s, export %s%n", id, worst, checked, baseEndpoints,
        endpointsTaken(out, "tfsm"));
  }

  @ParameterizedTest(name = "{0} {1}")
  @MethodSource("heads")
  void newHeadExportsLoadInPythonAndJavaWithJavasOutputs(String id, HeadSpec head) throws IOException {
    Fixture fixture = Fixture.of(id);
    String before = TreeDigest.of(fixture.model());
    Map<String, NpyArray> inputs = sampleInputs(fixture);
    Path export = tmp.resolve("export");
    NpyArray javaOutput;
    ExportResult result;
    try (KerasSavedModel model = KerasSavedModel.open(fixture.model());
        Trainer trainer = new Trainer(model, TrainingPlan.builder().head(head)
            .optimizer(new OptimizerSpec.Adam(0.01, 0.9, 0.999, 1e-7)).build())) {
      long n = inputs.values().iterator().next().shape()[0];
      Batch batch = Batch.of(inputs, labels(n, head.classes()));
      trainer.step(batch);
      trainer.step(batch);
      javaOutput = trainer.predict(inputs);
      result = Exporter.export(trainer, export, ExportOptions.defaults());
    }
    assertEquals(ExportResult.Mode.NEW_HEAD, result.mode());
    if (id.endsWith("tf_keras")) {
      // A new head has no Keras layer config, so tf_keras gives back a plain object that cannot
      // be called: the result says so and names the loaders that work, and tf_keras does that.
      assertTrue(result.python().endsWith("; tf_keras.models.load_model gives an object that cannot be called or"
          + " predict (a new head has no Keras layer config to rebuild)"), result.python());
      Process p = new ProcessBuilder(org.finetune.testing.Python.interpreter().toString(), "-c",
          "import sys, tf_keras\nm = tf_keras.models.load_model(sys.argv[1], compile=False)\n"
          + "sys.exit(3 if not callable(m) and not hasattr(m, 'predict') else 0)", export.toString())
          .redirectErrorStream(true).start();
      String said = new String(p.getInputStream().readAllBytes());
      assertEquals(3, waitFor(p), id + ": tf_keras.models.load_model gave a model that can be called: " + said);
    } else {
      assertFalse(result.python().contains("tf_keras"), result.python());
    }
    Path out = tmp.resolve("python");
    check(export, inputs, out, false);
    double worst = compareOutputs(id, Map.of("output_0", javaOutput), out, inputs.size());
    // The loaded object lists its variables as a Keras export's does, the trainable ones apart.
    JsonObject lists = JsonParser.parseString(Files.readString(out.resolve("object.json"))).getAsJsonObject();
    assertEquals(result.variables(), lists.get("variables").getAsInt(), id + ": " + lists);
    assertEquals(result.variables(), lists.get("trainable_variables").getAsInt()
        + lists.get("non_trainable_variables").getAsInt(), id + ": " + lists);
    assertTrue(lists.get("trainable_variables").getAsInt() > 0, id + ": " + lists);

    // TF Java (and so TF Serving's C++ loader) runs it too, and our own audit accepts it.
    try (KerasSavedModel reloaded = KerasSavedModel.open(export)) {
      NpyArray java = signatureOutputs(reloaded, inputs).get("output_0");
      double d = NpyArray.relativeDifference(javaOutput.toDoubles(), java.toDoubles());
      assertTrue(d <= TOLERANCE, id + ": the export reloaded in Java differs by " + d);
      assertEquals(head.classes(), java.shape()[1]);
    }
    JsonObject provenance = JsonParser.parseString(Files.readString(export.resolve("assets").resolve(Exporter.PROVENANCE)))
        .getAsJsonObject();
    assertEquals("new_head", provenance.get("mode").getAsString());
    assertEquals(head.classes(), provenance.getAsJsonObject("plan").getAsJsonObject("head").get("classes").getAsInt());
    assertEquals(2, provenance.getAsJsonObject("training").get("optimizer_steps").getAsLong());
    assertEquals(TreeDigest.of(fixture.model()), provenance.getAsJsonObject("base").get("digest").getAsString());
    assertEquals(before, TreeDigest.of(fixture.model()), "the base model's directory is unchanged");
    System.out.printf("export new-head %-36s %d variables (%d trainable), %.1f MB: python vs java worst %.3g;"
        + " TFSMLayer endpoints %s%n", id, result.variables(), lists.get("trainable_variables").getAsInt(),
        result.bytes() / 1e6, worst, endpointsTaken(out, "tfsm"));
  }

  @Test
  void servingLayoutOverwritingAndOverlapRules() throws IOException {
    Fixture fixture = Fixture.of("vgg16_small/keras3_export");
    String before = TreeDigest.of(fixture.model());
    Path root = tmp.resolve("serving");
    try (KerasSavedModel model = KerasSavedModel.open(fixture.model())) {
      ExportResult first = Exporter.export(model, root, ExportOptions.defaults().servingVersion(3));
      assertEquals(root.resolve("3").toAbsolutePath(), first.dir());
      assertTrue(Files.isRegularFile(root.resolve("3").resolve("saved_model.pb")));
      String firstProvenance = Files.readString(root.resolve("3").resolve("assets").resolve(Exporter.PROVENANCE));

      IllegalArgumentException refused = assertThrows(IllegalArgumentException.class,
          () -> Exporter.export(model, root, ExportOptions.defaults().servingVersion(3)));
      assertTrue(refused.getMessage().contains("exists"), refused.getMessage());
      assertEquals(firstProvenance, Files.readString(root.resolve("3").resolve("assets").resolve(Exporter.PROVENANCE)),
          "a refused export leaves the existing one alone");

      Exporter.export(model, root, ExportOptions.defaults().servingVersion(3).overwriting(true));
      assertTrue(Files.isRegularFile(root.resolve("3").resolve("saved_model.pb")));
      try (Stream<Path> list = Files.list(root)) {
        assertEquals(List.of("3"), list.map(p -> p.getFileName().toString()).toList(), "no temporary directory is left");
      }

      IllegalArgumentException inside = assertThrows(IllegalArgumentException.class,
          () -> Exporter.export(model, fixture.model().resolve("exported"), ExportOptions.defaults()));
      assertTrue(inside.getMessage().contains("never written to"), inside.getMessage());
    }
    assertEquals(before, TreeDigest.of(fixture.model()), "the base model's directory is unchanged");
  }

  private static int waitFor(Process p) {
    try {
      if (!p.waitFor(10, java.util.concurrent.TimeUnit.MINUTES)) {
        p.destroyForcibly();
        throw new IllegalStateException("python did not finish in 10 minutes");
      }
      return p.exitValue();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }
}
