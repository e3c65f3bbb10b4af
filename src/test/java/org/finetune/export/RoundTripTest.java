package org.finetune.export;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.finetune.cli.Cli;
import org.finetune.data.NpyArray;
import org.finetune.model.KerasSavedModel;
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

/**
 * Java fine-tunes and exports (through {@code finetune export} from a checkpoint), Python trains
 * one more step on the restored object and saves it, Java loads that, fine-tunes again and
 * exports, Python loads it: every hop's outputs agree.
 */
class RoundTripTest {
  static final double TOLERANCE = 1e-5;

  @TempDir
  Path tmp;

  static int cli(StringWriter out, StringWriter err, String... args) {
    return new Cli().run(args, new PrintWriter(out), new PrintWriter(err));
  }

  @Test
  void javaPythonJavaPython() throws IOException {
    Fixture fixture = Fixture.of("vgg16_small/keras3_export");
    String before = TreeDigest.of(fixture.model());
    Map<String, NpyArray> inputs = ExportTest.sampleInputs(fixture);
    TrainingPlan plan = TrainingPlan.builder().loss(LossSpec.MSE).optimizer(new OptimizerSpec.Sgd(0.01, 0.9, false))
        .build();
    NpyArray target;
    Path checkpoint = tmp.resolve("checkpoint");
    Map<String, NpyArray> hop1;
    try (KerasSavedModel model = KerasSavedModel.open(fixture.model()); Trainer trainer = new Trainer(model, plan)) {
      target = ExportTest.randomLike(trainer.predict(inputs), 11);
      trainer.step(Batch.of(inputs, target));
      trainer.step(Batch.of(inputs, target));
      Checkpoint.save(trainer, checkpoint, null);
      hop1 = ExportTest.signatureOutputs(model, inputs);
    }
    // Hop 1: the CLI exports the checkpoint; Python loads it.
    Path first = tmp.resolve("first");
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    assertEquals(0, cli(out, err, "export", checkpoint.toString(), "--out", first.toString()), err.toString());
    assertTrue(out.toString().contains("same-architecture"), out.toString());
    assertEquals(2, cli(new StringWriter(), err = new StringWriter(), "export", checkpoint.toString(), "--out",
        first.toString()), "an existing output is refused");
    assertTrue(err.toString().contains("exists"), err.toString());
    Path check1 = tmp.resolve("check1");
    new ExportTest().withTmp(tmp).check(first, inputs, check1, false);
    double d1 = ExportTest.compareOutputs("hop 1", hop1, check1, inputs.size());

    // Hop 2: Python trains one step through the restored object and saves it.
    Path targetFile = tmp.resolve("target.npy");
    target.write(targetFile);
    NpyArray pythonAfter = pythonStep(first, inputs, targetFile);
    Path second = tmp.resolve("python").resolve("model");

    // Hop 3: Java loads Python's save, matches its outputs, fine-tunes again and exports.
    Path third = tmp.resolve("third");
    Map<String, NpyArray> hop3;
    double d2;
    try (KerasSavedModel model = KerasSavedModel.open(second); Trainer trainer = new Trainer(model, plan)) {
      NpyArray loaded = ExportTest.signatureOutputs(model, inputs).values().iterator().next();
      d2 = NpyArray.relativeDifference(pythonAfter.toDoubles(), loaded.toDoubles());
      assertTrue(d2 <= TOLERANCE, "Java reads Python's save with outputs off by " + d2);
      trainer.step(Batch.of(inputs, target));
      hop3 = ExportTest.signatureOutputs(model, inputs);
      assertTrue(!java.util.Arrays.equals(loaded.data(), hop3.values().iterator().next().data()), "Java trained it");
      Exporter.export(trainer, third, ExportOptions.defaults());
    }
    // Hop 4: Python loads Java's second export.
    Path check3 = tmp.resolve("check3");
    new ExportTest().withTmp(tmp).check(third, inputs, check3, false);
    double d3 = ExportTest.compareOutputs("hop 3", hop3, check3, inputs.size());
    assertEquals(before, TreeDigest.of(fixture.model()));
    System.out.printf("round trip java->python %.3g, python->java %.3g, java->python %.3g%n", d1, d2, d3);
  }

  /**
   * A new-head export is a Keras export to Python: TFSMLayer takes both endpoints, and a
   * {@code GradientTape} over the loaded object's {@code trainable_variables} trains it on; Java
   * loads the re-saved model with Python's outputs and trains it again.
   */
  @Test
  void aNewHeadExportTrainsOnInPythonThroughItsTrainableVariablesAndComesBack() throws IOException {
    Fixture fixture = Fixture.of("vgg16_small/keras3_export");
    // Inputs of unit scale and small steps, so that the new head's softmax is not saturated and a
    // step moves it.
    Map<String, NpyArray> inputs = new java.util.LinkedHashMap<>();
    ExportTest.sampleInputs(fixture).forEach((k, v) -> inputs.put(k, ExportTest.randomLike(v, 3)));
    long n = inputs.values().iterator().next().shape()[0];
    Path first = tmp.resolve("first");
    NpyArray javaOutput;
    try (KerasSavedModel model = KerasSavedModel.open(fixture.model());
        Trainer trainer = new Trainer(model, TrainingPlan.builder().head(HeadSpec.classifier(3).at("block5_pool"))
            .optimizer(new OptimizerSpec.Sgd(1e-4, 0.0, false)).build())) {
      Batch batch = Batch.of(inputs, ExportTest.labels(n, 3));
      trainer.step(batch);
      trainer.step(batch);
      javaOutput = trainer.predict(inputs);
      Exporter.export(trainer, first, ExportOptions.defaults());
    }
    Path check = tmp.resolve("check");
    new ExportTest().withTmp(tmp).check(first, inputs, check, false);
    ExportTest.compareOutputs("new head", Map.of("output_0", javaOutput), check, inputs.size());

    Path targetFile = tmp.resolve("target.npy");
    ExportTest.randomLike(javaOutput, 5).write(targetFile);
    NpyArray pythonAfter = pythonStep(first, inputs, targetFile, "--through", "object", "--lr", "1.0");
    double moved = NpyArray.relativeDifference(javaOutput.toDoubles(), pythonAfter.toDoubles());
    assertTrue(moved > 1e-3, "Python's step moved the outputs by " + moved);
    try (KerasSavedModel model = KerasSavedModel.open(tmp.resolve("python").resolve("model"));
        Trainer trainer = new Trainer(model, TrainingPlan.builder().loss(LossSpec.MSE)
            .optimizer(new OptimizerSpec.Sgd(0.01, 0.9, false)).build())) {
      NpyArray loaded = ExportTest.signatureOutputs(model, inputs).values().iterator().next();
      double d = NpyArray.relativeDifference(pythonAfter.toDoubles(), loaded.toDoubles());
      assertTrue(d <= TOLERANCE, "Java reads Python's save of the new-head export with outputs off by " + d);
      trainer.step(Batch.of(inputs, NpyArray.read(targetFile)));
      NpyArray again = ExportTest.signatureOutputs(model, inputs).values().iterator().next();
      assertTrue(!java.util.Arrays.equals(loaded.data(), again.data()), "Java trained it");
      System.out.printf("new-head round trip: python->java %.3g%n", d);
    }
  }

  /** One step of scripts/python_step.py on {@code model}, saved under tmp/python; its outputs after the step. */
  private NpyArray pythonStep(Path model, Map<String, NpyArray> inputs, Path target, String... extra)
      throws IOException {
    List<String> args = new ArrayList<>(List.of("--model", model.toString(), "--target", target.toString(),
        "--out", tmp.resolve("python").toString()));
    args.addAll(List.of(extra));
    for (Map.Entry<String, NpyArray> e : inputs.entrySet()) {
      Path f = tmp.resolve("rt_" + e.getKey() + ".npy");
      e.getValue().write(f);
      args.add("--input");
      args.add(e.getKey() + "=" + f);
    }
    Python.run("python_step.py", args.toArray(new String[0]));
    return NpyArray.read(tmp.resolve("python").resolve("after.npy"));
  }
}
