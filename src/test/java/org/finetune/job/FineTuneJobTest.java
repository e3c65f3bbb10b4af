package org.finetune.job;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.finetune.cli.Cli;
import org.finetune.data.NpyArray;
import org.finetune.export.Checkpoint;
import org.finetune.export.Provenance;
import org.finetune.export.TrainingPosition;
import org.finetune.model.KerasSavedModel;
import org.finetune.testing.Fixture;
import org.finetune.testing.Images;
import org.finetune.testing.TreeDigest;
import org.finetune.train.Fit;
import org.finetune.train.OptimizerSpec;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.tensorflow.Tensor;

/**
 * The library's fine-tuning job does what {@code finetune train} does, and its callbacks keep
 * their promises: the best checkpoint survives a resume, early stopping restores the best
 * weights, reduce-on-plateau halves the rate.
 */
class FineTuneJobTest {
  static final List<String> CLASSES = List.of("cows", "horses", "humans");

  @TempDir
  Path tmp;

  static Path smallVgg16() {
    return Fixture.of("vgg16_small/keras3_export").model();
  }

  /** The README's library example, with the run's paths under {@code out}. */
  static FineTuneResult readmeExample(Path model, Path data, Path out) {
    try (KerasSavedModel base = KerasSavedModel.open(model)) {
      return FineTuneJob.builder(base)
          .data(JobData.images(data))                                  // one sub-folder per class
          .newHead().unfreezeGradually(2).epochs(4)                     // head, then + block5, ...
          .checkpoints(out.resolve("checkpoints")).history(out.resolve("history.csv"))
          .exportTo(out.resolve("finetuned"))
          .build().run();                                               // a FineTuneResult
    }
  }

  @Test
  void readmeExampleTrainsExactlyAsTheTrainCommandDoes() throws IOException {
    Path model = Fixture.projectRoot().resolve("savedmodels/digits_vgg16/keras3_export/model");
    Path data = Fixture.projectRoot().resolve("testdata/digits/train");
    Path lib = tmp.resolve("library");
    FineTuneResult r = readmeExample(model, data, lib);
    Path cli = tmp.resolve("cli");
    String out = cli("train", model.toString(), "--data", data.toString(), "--head", "--unfreeze", "gradual:2",
        "--epochs", "4", "--checkpoints", cli.resolve("checkpoints").toString(), "--history",
        cli.resolve("history.csv").toString(), "--out", cli.resolve("finetuned").toString());
    assertTrue(out.contains("Epoch 4/4  (stage 2/6, 8 variables training)"), out);

    assertEquals(4, r.history().size());
    assertTrue(r.history().get(0).logs().containsKey("val_accuracy"), "validation ran: " + r.history().get(0));
    assertEquals(Files.readAllLines(cli.resolve("history.csv")), Files.readAllLines(lib.resolve("history.csv")));
    assertEquals(Files.readString(cli.resolve("checkpoints/last/plan.json")),
        Files.readString(lib.resolve("checkpoints/last/plan.json")));
    assertEquals(TrainingPosition.of(Checkpoint.read(cli.resolve("checkpoints/last"))),
        TrainingPosition.of(Checkpoint.read(lib.resolve("checkpoints/last"))));
    assertSamePredictions(cli.resolve("finetuned"), lib.resolve("finetuned"));
    Provenance p = Provenance.read(lib.resolve("finetuned")).orElseThrow();
    assertEquals(List.of("5", "6", "7", "8", "9"), p.classes());
    assertEquals("CAFFE", p.preprocess().orElseThrow().name());
    assertEquals(r.plan(), p.plan().orElseThrow());
  }

  @Test
  void headOnlyJobsCacheFeaturesAsTheTrainCommandDoes() throws IOException {
    Path data = Images.folder(tmp.resolve("data"), CLASSES, 8, 32, 3);
    Path model = smallVgg16();
    StringWriter said = new StringWriter();
    FineTuneResult r;
    try (KerasSavedModel base = KerasSavedModel.open(model)) {
      r = FineTuneJob.builder(base).data(JobData.images(data)).newHead().epochs(3).batchSize(4)
          .history(tmp.resolve("lib.csv")).exportTo(tmp.resolve("lib"))
          .listener(JobListener.printing(new PrintWriter(said, true), new PrintWriter(new StringWriter()), false))
          .build().run();
    }
    assertTrue(said.toString().contains("Caching the base's features"), said.toString());
    String out = cli("train", model.toString(), "--data", data.toString(), "--head", "--epochs", "3", "--batch-size",
        "4", "--history", tmp.resolve("cli.csv").toString(), "--out", tmp.resolve("cli").toString());
    assertTrue(out.contains("Caching the base's features"), out);
    assertEquals(Files.readAllLines(tmp.resolve("cli.csv")), Files.readAllLines(tmp.resolve("lib.csv")));
    assertSamePredictions(tmp.resolve("cli"), tmp.resolve("lib"));
    assertEquals(3, r.history().size());
  }

  @Test
  void aNewHeadTrainsBesideTheLayersNamedToTrain() {
    Path data = Images.folder(tmp.resolve("data"), CLASSES, 4, 32, 3);
    try (KerasSavedModel base = KerasSavedModel.open(smallVgg16())) {
      FineTuneResult r = FineTuneJob.builder(base).data(JobData.images(data)).newHead()
          .train(org.finetune.train.Selector.parse("block:block5")).epochs(1).batchSize(4).build().run();
      assertEquals(List.of("block:head", "block:block5"), r.plan().stages().get(0).selectors().stream()
          .map(org.finetune.train.Selector::text).toList());
    }
  }

  @Test
  void aJobFromALoaderTrainsItsOwnCopyAndLeavesTheOpenModelAsItWas() {
    Path data = Images.folder(tmp.resolve("data"), CLASSES, 4, 32, 3);
    NpyArray probe = Images.randomInput(4);
    try (KerasSavedModel served = KerasSavedModel.open(smallVgg16())) {
      long nodes = nodes(served);
      double[] before = predictWith(served, probe);
      for (int i = 0; i < 2; i++) {
        FineTuneJob.builder(served.loader()).data(JobData.images(data)).newHead()
            .train(new org.finetune.train.Selector.All()).epochs(1).batchSize(12).validationSplit(0)
            .exportTo(tmp.resolve("export-" + i)).build().run();
        assertEquals(nodes, nodes(served), "the served model's graph is as it was");
        assertArrayEquals(before, predictWith(served, probe), 0.0, "and so are its weights");
      }
      assertSamePredictions(tmp.resolve("export-0"), tmp.resolve("export-1"));
      // In place, as Keras's fit: the same job changes the open model and adds to its graph.
      FineTuneJob.builder(served).data(JobData.images(data)).newHead().train(new org.finetune.train.Selector.All())
          .epochs(1).batchSize(12).validationSplit(0).build().run();
      assertTrue(nodes(served) > nodes, "training in place builds into the model's graph");
      assertFalse(java.util.Arrays.equals(before, predictWith(served, probe)), "and trains its weights");
    }
  }

  private static long nodes(KerasSavedModel model) {
    long n = 0;
    for (var it = model.graph().operations(); it.hasNext(); it.next()) {
      n++;
    }
    return n;
  }

  private static double[] predictWith(KerasSavedModel model, NpyArray x) {
    try (Tensor t = x.toTensor()) {
      Map<String, Tensor> out = model.predict(model.info().signature(), Map.of(input(model), t));
      try {
        return NpyArray.of(out.values().iterator().next()).toDoubles();
      } finally {
        out.values().forEach(Tensor::close);
      }
    }
  }

  @Test
  void aResumedRunWhoseFirstEpochIsWorseKeepsTheBestCheckpoint() throws IOException {
    Path data = Images.folder(tmp.resolve("data"), CLASSES, 10, 32, 5);
    Path checkpoints = tmp.resolve("checkpoints");
    FineTuneResult first;
    try (KerasSavedModel base = KerasSavedModel.open(smallVgg16())) {
      first = FineTuneJob.builder(base).data(JobData.images(data)).newHead().epochs(2).batchSize(4)
          .checkpoints(checkpoints).optimizer(new OptimizerSpec.Adam(0.01, 0.9, 0.999, 1e-7)).build().run();
    }
    Path best = checkpoints.resolve("best");
    String bestBefore = TreeDigest.of(best);
    double bestLoss = TrainingPosition.of(Checkpoint.read(best)).best().getAsDouble();
    // The same images with their labels rotated: the model's guesses are now wrong, so the
    // resumed epoch's validation loss is worse than the best so far.
    Path rotated = tmp.resolve("rotated");
    for (int c = 0; c < CLASSES.size(); c++) {
      copyTree(data.resolve(CLASSES.get(c)), rotated.resolve(CLASSES.get((c + 1) % CLASSES.size())));
    }
    FineTuneResult resumed;
    try (KerasSavedModel base = KerasSavedModel.open(smallVgg16())) {
      resumed = FineTuneJob.builder(base).data(JobData.images(rotated)).epochs(3).batchSize(4)
          .checkpoints(checkpoints).resume(checkpoints.resolve("last")).build().run();
    }
    assertEquals(2, resumed.startEpoch());
    double after = resumed.history().get(0).logs().get("val_loss");
    assertTrue(after > bestLoss, "the resumed epoch is worse: " + after + " against " + bestLoss);
    assertEquals(bestBefore, TreeDigest.of(best), "best/ is the checkpoint of the better epoch still");
    TrainingPosition last = TrainingPosition.of(Checkpoint.read(checkpoints.resolve("last")));
    assertEquals(3, last.epoch());
    assertEquals(bestLoss, last.best().getAsDouble(), "last/ carries the best value on");
    // The history carries across the resume: the checkpoint's epochs are the first run's, exactly.
    assertEquals(first.history(), resumed.earlier());
    assertEquals(List.of(0, 1, 2), resumed.allEpochs().stream().map(Fit.Epoch::epoch).toList());
    assertEquals(resumed.allEpochs(), last.history());
    Path file = tmp.resolve("result.json");
    resumed.write(file);
    FineTuneResult read = FineTuneResult.read(file);
    assertEquals(resumed.toJson(), read.toJson(), "the result file reads back as written");
    assertEquals(resumed.allEpochs(), read.allEpochs());
  }

  @Test
  void earlyStoppingEndsWithTheBestEpochsWeights() {
    Path data = noisyLabels(tmp.resolve("data"));
    NpyArray probe = Images.randomInput(11);
    List<NpyArray> perEpoch = new ArrayList<>();
    FineTuneResult r;
    try (KerasSavedModel base = KerasSavedModel.open(smallVgg16())) {
      r = FineTuneJob.builder(base).data(JobData.images(data)).newHead().headHidden(32, 0).epochs(12).batchSize(4)
          .optimizer(new OptimizerSpec.Adam(0.05, 0.9, 0.999, 1e-7)).earlyStopping(2)
          .callback(new Fit.Callback() {
            @Override
            public void onEpochEnd(Fit.Control c, Fit.Epoch epoch) {
              perEpoch.add(c.trainer().predict(Map.of(input(base), probe)));
            }
          })
          .exportTo(tmp.resolve("export")).build().run();
    }
    assertTrue(r.stoppedEarly(), "validation loss stopped improving: " + r.history());
    int best = r.bestEpoch().getAsInt();
    assertEquals(r.history().size() - 3, best, "patience 2: two epochs after the best");
    NpyArray exported = predict(tmp.resolve("export"), probe);
    assertArrayEquals(perEpoch.get(best).toDoubles(), exported.toDoubles(), 0.0, "the best epoch's weights");
    assertFalse(java.util.Arrays.equals(perEpoch.get(perEpoch.size() - 1).toDoubles(), exported.toDoubles()),
        "the last epoch's weights differ, so the restore is what made them equal");
  }

  @Test
  void reduceOnPlateauHalvesTheRateAfterAnEpochWithoutImprovement() {
    Path data = noisyLabels(tmp.resolve("data"));
    FineTuneResult r;
    try (KerasSavedModel base = KerasSavedModel.open(smallVgg16())) {
      r = FineTuneJob.builder(base).data(JobData.images(data)).newHead().headHidden(32, 0).epochs(6).batchSize(4)
          .optimizer(new OptimizerSpec.Adam(0.05, 0.9, 0.999, 1e-7)).reduceLrOnPlateau(1).build().run();
    }
    double best = Double.NaN;
    int reductions = 0;
    for (int e = 0; e + 1 < r.history().size(); e++) {
      Map<String, Double> logs = r.history().get(e).logs();
      double loss = logs.get("val_loss");
      double next = r.history().get(e + 1).logs().get("lr");
      if (Double.isNaN(best) || loss < best) {
        best = loss;
        assertEquals(logs.get("lr"), next, "improved at epoch " + e + ": the rate stays");
      } else {
        assertEquals(logs.get("lr") * 0.5, next, "no improvement at epoch " + e + ": the rate halves");
        reductions++;
      }
    }
    assertTrue(reductions > 0, "some epoch did not improve: " + r.history());
    assertNotEquals(0.05, r.history().get(r.history().size() - 1).logs().get("lr"));
  }

  /** Three class folders whose images are shuffled between them: labels a model can only memorise. */
  private static Path noisyLabels(Path root) {
    Path clean = Images.folder(root.resolveSibling(root.getFileName() + "-clean"), CLASSES, 12, 32, 9);
    List<Path> files = new ArrayList<>();
    for (String c : CLASSES) {
      try (var list = Files.list(clean.resolve(c))) {
        list.sorted().forEach(files::add);
      } catch (IOException e) {
        throw new java.io.UncheckedIOException(e);
      }
    }
    java.util.Collections.shuffle(files, new Random(17));
    try {
      for (int i = 0; i < files.size(); i++) {
        Path dir = Files.createDirectories(root.resolve(CLASSES.get(i % CLASSES.size())));
        Files.copy(files.get(i), dir.resolve(String.format("%03d_%s", i, files.get(i).getFileName())));
      }
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
    return root;
  }

  private static String input(KerasSavedModel model) {
    return model.info().selectedSignature().inputs().get(0).key();
  }

  private static NpyArray predict(Path export, NpyArray x) {
    try (KerasSavedModel m = KerasSavedModel.open(export); Tensor t = x.toTensor()) {
      Map<String, Tensor> out = m.predict(m.info().signature(), Map.of(input(m), t));
      try {
        return NpyArray.of(out.values().iterator().next());
      } finally {
        out.values().forEach(Tensor::close);
      }
    }
  }

  static void assertSamePredictions(Path a, Path b) {
    for (int seed = 1; seed <= 3; seed++) {
      NpyArray x = Images.randomInput(seed);
      assertArrayEquals(predict(a, x).toDoubles(), predict(b, x).toDoubles(), 0.0, "export outputs, input " + seed);
    }
  }

  static String cli(String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int exit = new Cli().run(args, new PrintWriter(out), new PrintWriter(err));
    assertEquals(0, exit, err + "\n" + out);
    return out.toString();
  }

  private static void copyTree(Path from, Path to) throws IOException {
    Files.createDirectories(to);
    try (var list = Files.list(from)) {
      for (Path f : list.toList()) {
        Files.copy(f, to.resolve(f.getFileName()));
      }
    }
  }
}
