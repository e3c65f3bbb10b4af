package org.finetune.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.Gson;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.finetune.data.NpyArray;
import org.finetune.export.ExportOptions;
import org.finetune.export.Exporter;
import org.finetune.model.KerasSavedModel;
import org.finetune.savedmodel.VariableInfo;
import org.finetune.testing.Fixture;
import org.finetune.testing.Python;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Low-rank adapters against keras-hub's {@code enable_lora(rank=4)} on the small GPT-2: from the
 * adapter values Keras drew, 5 Adam steps give the same losses and adapters, the base weights stay
 * bit-identical, and the merged export (the base architecture) computes what Keras computes with
 * the same adapters enabled, and what Java computes through them.
 */
class LowRankParityTest {
  static final String SMALL = "generated/gpt2_small/keras3_export";
  static final int STEPS = 5;

  @TempDir
  Path tmp;

  static TrainingPlan plan(LowRankSpec spec) {
    return TrainingPlan.builder().loss(LossSpec.CAUSAL_LM).optimizer(new OptimizerSpec.Adam(1e-3, 0.9, 0.999, 1e-7))
        .lowRank(spec).stage(Stage.of(new Selector.Adapters())).build();
  }

  @Test
  void adaptersTrainAsKerasEnableLoraAndTheMergedExportIsKerasWithThem() throws IOException {
    Fixture fixture = Fixture.of(SMALL);
    Map<String, NpyArray> inputs = sampleInputs(fixture);
    Batch batch = Batch.unlabelled(inputs);
    try (KerasSavedModel model = KerasSavedModel.open(fixture.model());
        Trainer trainer = new Trainer(model, plan(LowRankSpec.of(4)))) {
      List<String> adapters = trainer.adapterVariables();
      assertEquals(8, adapters.size(), adapters.toString());
      assertEquals(adapters, trainer.trainedVariables(0), "the adapters alone train");
      assertTrue(trainer.adapters().orElseThrow().contains("4 kernels"), trainer.adapters().get());
      NpyArray startOutput = trainer.predict(inputs);

      Path out = tmp.resolve("keras");
      Python.run("reference_train.py", "--plan", writePlan(fixture, inputs, adapters).toString(), "--out",
          out.toString());
      JsonObject result = JsonParser.parseString(Files.readString(out.resolve("adam/result.json"))).getAsJsonObject();
      Map<String, NpyArray> start = new LinkedHashMap<>();
      for (String name : adapters) {
        start.put(name, NpyArray.read(out.resolve("adam").resolve(result.getAsJsonObject("lora_start").get(name)
            .getAsString())));
      }
      // Keras's B starts at zero, so the adapters start as a no-op: the output is the base model's.
      start.entrySet().stream().filter(e -> e.getKey().endsWith("_b"))
          .forEach(e -> assertEquals(0.0, KerasParityTest.maxAbs(e.getValue().toDoubles()), e.getKey()));
      trainer.assign(start);
      assertArrayEquals(startOutput.data(), trainer.predict(inputs).data(), "zero B leaves the output as it was");

      List<String> base = model.info().variables().stream().filter(v -> !v.handle().isEmpty())
          .map(VariableInfo::name).toList();
      List<String> all = new ArrayList<>(base);
      all.addAll(adapters);
      Map<String, NpyArray> before = trainer.values(all);
      double worstLoss = 0;
      double worstAdapter = 0;
      for (int step = 1; step <= STEPS; step++) {
        StepResult r = trainer.step(batch);
        double keras = result.getAsJsonArray("losses").get(step - 1).getAsDouble();
        worstLoss = Math.max(worstLoss, Math.abs(r.loss() - keras) / Math.abs(keras));
        JsonObject recorded = result.getAsJsonObject("variables").getAsJsonObject(String.valueOf(step));
        if (recorded == null) {
          continue;
        }
        Map<String, NpyArray> now = trainer.values(adapters);
        for (String name : adapters) {
          NpyArray k = NpyArray.read(out.resolve("adam").resolve(recorded.get(name).getAsString()));
          double diff = KerasParityTest.difference(name, k.toDoubles(), now.get(name).toDoubles(), before, all);
          worstAdapter = Math.max(worstAdapter, diff);
          assertTrue(diff <= KerasParityTest.TOLERANCE, "step " + step + " " + name + ": relative difference " + diff);
        }
      }
      assertTrue(worstLoss <= KerasParityTest.TOLERANCE, "loss relative difference " + worstLoss);
      Map<String, NpyArray> after = trainer.values(base);
      for (String name : base) {
        assertArrayEquals(before.get(name).data(), after.get(name).data(), name + " is frozen under the adapters");
      }
      NpyArray javaOutput = trainer.predict(inputs);

      Path export = tmp.resolve("export");
      Exporter.export(trainer, export, ExportOptions.defaults());
      Map<String, NpyArray> afterExport = trainer.values(base);
      for (String name : base) {
        assertArrayEquals(before.get(name).data(), afterExport.get(name).data(), name + " is put back after the merge");
      }
      Path applied = tmp.resolve("applied");
      String printed = Python.run("lora_apply.py", "--keras", keras(fixture).toString(), "--rank", "4", "--adapters",
          files("adapter", trainer.values(adapters)).toString(), "--inputs", files("input", inputs).toString(),
          "--export", export.toString(), "--out", applied.toString());
      double[] kerasOut = NpyArray.read(applied.resolve("keras.npy")).toDoubles();
      double[] exportOut = NpyArray.read(applied.resolve("export.npy")).toDoubles();
      double exportVsJava = NpyArray.relativeDifference(javaOutput.toDoubles(), exportOut);
      double exportVsKeras = NpyArray.relativeDifference(kerasOut, exportOut);
      double moved = NpyArray.relativeDifference(startOutput.toDoubles(), javaOutput.toDoubles());
      System.out.printf("lora parity gpt2_small rank 4: %d adapters, worst adapter %.3g, worst loss %.3g after %d"
          + " Adam steps; merged export vs Java %.3g, vs Keras with the adapters %.3g (training moved the output"
          + " %.3g)%n%s", adapters.size(), worstAdapter, worstLoss, STEPS, exportVsJava, exportVsKeras, moved, printed);
      assertTrue(moved > 1e-4, "the adapters changed the output: " + moved);
      assertTrue(exportVsJava <= 1e-5, "merged export vs Java " + exportVsJava);
      assertTrue(exportVsKeras <= 1e-5, "merged export vs Keras with the adapters " + exportVsKeras);
    }
  }

  @Test
  void targetsThatMatchNothingAreRefusedWithTheKernelsListed() {
    Fixture fixture = Fixture.of(SMALL);
    try (KerasSavedModel model = KerasSavedModel.open(fixture.model())) {
      Exception e = assertThrows(RuntimeException.class, () -> new Trainer(model,
          plan(LowRankSpec.of(4).withTargets(List.of("*/nothing/kernel")))));
      assertTrue(e.getMessage().contains("'*/nothing/kernel' matches no variable")
          && e.getMessage().contains("transformer_layer_0/self_attention/query/kernel"), e.getMessage());
      e = assertThrows(RuntimeException.class, () -> new Trainer(model,
          plan(LowRankSpec.of(4).withTargets(List.of("*/self_attention_layer_norm/gamma")))));
      assertTrue(e.getMessage().contains("no trainable float kernel of rank 2 or more"), e.getMessage());
    }
    try (KerasSavedModel tf1 = KerasSavedModel.open(Fixture.of("tf1_linear/tf1").model())) {
      Exception e = assertThrows(RuntimeException.class, () -> new Trainer(tf1, TrainingPlan.builder()
          .loss(LossSpec.MSE).lowRank(LowRankSpec.of(2)).stage(Stage.of(new Selector.Adapters())).build()));
      assertTrue(e.getMessage().contains("dense/kernel is a TF1 reference variable (VariableV2)"), e.getMessage());
    }
  }

  @Test
  void trainersOfDifferentRanksShareOneOpenModel() throws IOException {
    Fixture fixture = Fixture.of(SMALL);
    Batch batch = Batch.unlabelled(sampleInputs(fixture));
    try (KerasSavedModel model = KerasSavedModel.open(fixture.model())) {
      for (int rank : new int[] {2, 4, 2}) {
        try (Trainer t = new Trainer(model, plan(LowRankSpec.of(rank)))) {
          String a = t.adapterVariables().get(0);
          assertEquals(rank, t.values(List.of(a)).get(a).shape()[2], a);
          double first = t.step(batch).loss();
          double second = t.step(batch).loss();
          assertTrue(second < first, "rank " + rank + ": " + first + " -> " + second);
        }
      }
    }
  }

  private static Map<String, NpyArray> sampleInputs(Fixture fixture) throws IOException {
    JsonObject sample = fixture.expected().getAsJsonObject("sample").getAsJsonObject("inputs");
    Map<String, NpyArray> out = new LinkedHashMap<>();
    for (String key : sample.keySet()) {
      out.put(key, NpyArray.read(fixture.sampleFile(sample.get(key).getAsString())));
    }
    return out;
  }

  private static Path keras(Fixture fixture) {
    return fixture.root().getParent().resolve("keras").resolve("model.keras");
  }

  /** Writes arrays as .npy files; returns a JSON file of name to file. */
  private Path files(String kind, Map<String, NpyArray> arrays) throws IOException {
    JsonObject o = new JsonObject();
    for (Map.Entry<String, NpyArray> e : arrays.entrySet()) {
      Path f = tmp.resolve(kind + "_" + e.getKey().replace('/', '_') + ".npy");
      e.getValue().write(f);
      o.addProperty(e.getKey(), f.toString());
    }
    Path file = tmp.resolve(kind + "s.json");
    Files.writeString(file, new Gson().toJson(o));
    return file;
  }

  private Path writePlan(Fixture fixture, Map<String, NpyArray> inputs, List<String> adapters) throws IOException {
    JsonObject plan = new JsonObject();
    plan.addProperty("model", fixture.model().toString());
    plan.addProperty("keras_model", keras(fixture).toString());
    plan.addProperty("keras_flavor", "keras3");
    plan.add("inputs", new Gson().fromJson(Files.readString(files("input", inputs)), JsonObject.class));
    plan.addProperty("loss", LossSpec.CAUSAL_LM.kerasName());
    JsonObject lora = new JsonObject();
    lora.addProperty("rank", 4);
    plan.add("lora", lora);
    JsonObject c = new JsonObject();
    c.addProperty("name", "adam");
    c.addProperty("steps", STEPS);
    JsonArray record = new JsonArray();
    record.add(1);
    record.add(STEPS);
    c.add("record", record);
    JsonObject adam = new JsonObject();
    adam.addProperty("name", "adam");
    adam.addProperty("learning_rate", 1e-3);
    c.add("optimizer", adam);
    JsonArray vars = new JsonArray();
    adapters.forEach(vars::add);
    c.add("trainable", vars);
    JsonArray cases = new JsonArray();
    cases.add(c);
    plan.add("cases", cases);
    Path file = tmp.resolve("plan.json");
    Files.writeString(file, new Gson().toJson(plan));
    return file;
  }
}
