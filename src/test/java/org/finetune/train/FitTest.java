package org.finetune.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import org.finetune.data.ImageDataset;
import org.finetune.data.ImageFolder;
import org.finetune.data.ImageOps;
import org.finetune.data.NpyArray;
import org.finetune.export.Checkpoint;
import org.finetune.export.CheckpointCallback;
import org.finetune.model.KerasSavedModel;
import org.finetune.testing.Fixture;
import org.finetune.testing.Images;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The training loop on an image folder: learning, validation, skipped files, history, exact resume. */
class FitTest {
  static final List<String> CLASSES = List.of("cows", "horses", "humans");

  @TempDir
  Path tmp;

  static KerasSavedModel model() {
    return KerasSavedModel.open(Fixture.of("vgg16_small/keras3_export").model());
  }

  static TrainingPlan plan() {
    return TrainingPlan.builder().head(HeadSpec.classifier(3).at("block1_pool").hidden(16, 0.3))
        .optimizer(new OptimizerSpec.Adam(0.01, 0.9, 0.999, 1e-7))
        .stages(GradualUnfreezing.fromTop(List.of(Selector.parse("head"), Selector.parse("block:block1")), 2.6))
        .build();
  }

  @Test
  void trainsOnAnImageFolderSkippingExactlyTheUnreadableFiles() throws IOException {
    Path root = Images.folder(tmp.resolve("data"), CLASSES, 8, 32, 1);
    List<Path> bad = Images.corrupt(root, CLASSES);
    ImageFolder folder = ImageFolder.scan(root);
    assertEquals(CLASSES, folder.classes());
    ImageFolder.Split split = folder.split(0.25, 7);
    ImageDataset.Options options = ImageDataset.Options.of(32, 32, ImageOps.Preprocess.CAFFE, 4);
    StringWriter progress = new StringWriter();
    Path csv = tmp.resolve("history.csv");
    List<Fit.Epoch> history;
    long steps;
    try (ImageDataset train = ImageDataset.open(split.train(), options);
        ImageDataset val = ImageDataset.open(split.validation(), options.shuffled(false));
        KerasSavedModel model = model(); Trainer trainer = new Trainer(model, plan())) {
      java.util.Set<Path> skipped = new HashSet<>(train.skipped());
      skipped.addAll(val.skipped());
      assertEquals(new HashSet<>(bad), skipped, "exactly the unreadable files are skipped, found before training");
      history = Fit.run(trainer, Fit.images(train, "keras_tensor"), Optional.of(Fit.images(val, "keras_tensor")),
          new Fit.Options(6, OptionalInt.of(3)), List.of(new ProgressLogger(new PrintWriter(progress), false),
              new CsvLogger(csv, false), new TensorBoardLogger(tmp.resolve("logs")),
              new CurvesPlot(tmp.resolve("curves.png"))), Fit.Start.BEGINNING);
      assertEquals(1, trainer.stage(), "gradual unfreezing moved to the second stage after 3 epochs");
      steps = trainer.iterations();
    }
    assertEquals(6, history.size());
    double first = history.get(0).logs().get("loss");
    double last = history.get(5).logs().get("loss");
    assertTrue(last < first * 0.8, "the training loss falls: " + first + " -> " + last);
    assertTrue(history.get(5).logs().containsKey("val_accuracy"));
    assertEquals(7, Files.readAllLines(csv).size(), "a header and one row per epoch");
    assertTrue(progress.toString().contains("Epoch 6/6"), progress.toString());
    assertTrue(progress.toString().contains("val_loss"), progress.toString());
    // TensorBoard's own reader finds every scalar, with the values the loop reported.
    com.google.gson.JsonObject runs = com.google.gson.JsonParser.parseString(
        org.finetune.testing.Python.run("read_tensorboard.py", tmp.resolve("logs").toString())).getAsJsonObject();
    com.google.gson.JsonArray epochLoss = runs.getAsJsonObject("train").getAsJsonArray("epoch_loss");
    assertEquals(6, epochLoss.size());
    for (int e = 0; e < 6; e++) {
      assertEquals(e, epochLoss.get(e).getAsJsonArray().get(0).getAsInt());
      assertEquals(history.get(e).logs().get("loss"), epochLoss.get(e).getAsJsonArray().get(1).getAsDouble(), 1e-6);
    }
    assertEquals(6, runs.getAsJsonObject("validation").getAsJsonArray("epoch_accuracy").size());
    assertEquals(steps, runs.getAsJsonObject("train").getAsJsonArray("batch_loss").size(), "one per step");
    assertTrue(runs.getAsJsonObject("train").has("epoch_learning_rate"));
    java.awt.image.BufferedImage png = javax.imageio.ImageIO.read(tmp.resolve("curves.png").toFile());
    assertEquals(720, png.getWidth());
    assertTrue(Files.isRegularFile(tmp.resolve("curves_metrics.png")));
    System.out.printf("fit: loss %.4f -> %.4f, val_accuracy %.3f, %d files skipped%n", first, last,
        history.get(5).logs().get("val_accuracy"), bad.size());
  }

  @Test
  void resumingMidEpochReachesTheSameWeightsAsAnUninterruptedRun() throws IOException {
    Path root = Images.folder(tmp.resolve("data"), CLASSES, 6, 32, 2);
    ImageFolder folder = ImageFolder.scan(root);
    ImageDataset.Options options = ImageDataset.Options.of(32, 32, ImageOps.Preprocess.CAFFE, 4).flipping(true);
    Fit.Options fit = new Fit.Options(3, OptionalInt.of(1));
    Map<String, NpyArray> straight;
    List<String> names;
    try (ImageDataset data = ImageDataset.open(folder.items(), options);
        KerasSavedModel model = model(); Trainer trainer = new Trainer(model, plan())) {
      Fit.run(trainer, Fit.images(data, "keras_tensor"), Optional.empty(), fit, List.of(), Fit.Start.BEGINNING);
      names = trainer.trainedVariables(1);
      straight = trainer.values(names);
    }
    // Interrupted in the middle of epoch 2 (index 1), just after a checkpoint at batch 2.
    Path checkpoints = tmp.resolve("checkpoints");
    try (ImageDataset data = ImageDataset.open(folder.items(), options);
        KerasSavedModel model = model(); Trainer trainer = new Trainer(model, plan())) {
      Fit.Callback interrupt = new Fit.Callback() {
        @Override
        public void onBatchEnd(Fit.Control c, StepResult result, long size) {
          if (c.epoch() == 1 && c.batch() == 2) {
            c.stop();
          }
        }
      };
      Fit.run(trainer, Fit.images(data, "keras_tensor"), Optional.empty(), fit,
          List.of(new CheckpointCallback(checkpoints, "loss", 2), interrupt), Fit.Start.BEGINNING);
    }
    Checkpoint.Info info = Checkpoint.read(checkpoints.resolve(CheckpointCallback.LAST));
    assertEquals(1, info.extra().get("epoch").getAsInt());
    assertEquals(2, info.extra().get("batch").getAsInt());
    try (ImageDataset data = ImageDataset.open(folder.items(), options);
        KerasSavedModel model = model(); Trainer trainer = new Trainer(model, info.plan())) {
      Checkpoint.restore(trainer, info);
      Fit.run(trainer, Fit.images(data, "keras_tensor"), Optional.empty(), fit, List.of(),
          new Fit.Start(info.extra().get("epoch").getAsInt(), info.extra().get("batch").getAsInt()));
      Map<String, NpyArray> resumed = trainer.values(names);
      for (String name : names) {
        assertArrayEquals(straight.get(name).data(), resumed.get(name).data(), name);
      }
    }
  }

  @Test
  void everyCallbackHearsTheEndOfTrainingWhenAStepFails() throws IOException {
    Path root = Images.folder(tmp.resolve("data"), CLASSES, 4, 32, 4);
    ImageFolder folder = ImageFolder.scan(root);
    List<String> ended = new java.util.ArrayList<>();
    Fit.Callback failing = new Fit.Callback() {
      @Override
      public void onBatchEnd(Fit.Control c, StepResult result, long size) {
        throw new IllegalStateException("a callback failed at batch " + c.batch());
      }

      @Override
      public void onTrainEnd(Fit.Control c, List<Fit.Epoch> history) {
        ended.add("failing");
      }
    };
    Fit.Callback recording = new Fit.Callback() {
      @Override
      public void onTrainEnd(Fit.Control c, List<Fit.Epoch> history) {
        ended.add("recording");
      }
    };
    try (ImageDataset data = ImageDataset.open(folder.items(), ImageDataset.Options.of(32, 32,
            ImageOps.Preprocess.CAFFE, 4));
        KerasSavedModel model = model(); Trainer trainer = new Trainer(model, plan())) {
      IllegalStateException e = assertThrows(IllegalStateException.class, () -> Fit.run(trainer,
          Fit.images(data, "keras_tensor"), Optional.empty(), new Fit.Options(2, OptionalInt.empty()),
          List.of(new EarlyStopping("loss", 1, 0, true), failing, recording), Fit.Start.BEGINNING));
      assertEquals("a callback failed at batch 1", e.getMessage());
    }
    assertEquals(List.of("failing", "recording"), ended);
  }

  @Test
  void aResumedHistoryWritesEachEpochOnceEvenWhenItsRowOutranTheCheckpoint() throws IOException {
    Path csv = tmp.resolve("history.csv");
    // Rows for epochs 0 and 1 were written, but the run was killed before epoch 1's checkpoint.
    Files.writeString(csv, "epoch,loss,lr\n0,2.0000000,0.0010000000\n1,1.5000000,0.0010000000\n");
    CsvLogger resumed = new CsvLogger(csv, true);
    resumed.onEpochEnd(null, new Fit.Epoch(1, 0, Map.of("loss", 1.25, "lr", 0.001)));
    resumed.onEpochEnd(null, new Fit.Epoch(2, 0, Map.of("loss", 1.0, "lr", 0.001)));
    List<String> rows = Files.readAllLines(csv);
    assertEquals(List.of("epoch", "0", "1", "2"), rows.stream().map(r -> r.split(",")[0]).toList(), rows.toString());
    assertTrue(rows.get(2).startsWith("1,1.2500000,"), rows.toString());
  }

  @Test
  void foldersThatCannotTrainAClassifierAreRefused() throws IOException {
    Path one = Images.folder(tmp.resolve("one"), List.of("cows"), 2, 8, 3);
    assertTrue(assertThrows(IllegalArgumentException.class, () -> ImageFolder.scan(one)).getMessage()
        .contains("single class folder"));
    Path empty = Files.createDirectories(tmp.resolve("empty"));
    assertTrue(assertThrows(IllegalArgumentException.class, () -> ImageFolder.scan(empty)).getMessage()
        .contains("no class folders"));
    Path noImages = Images.folder(tmp.resolve("partial"), List.of("cows"), 2, 8, 3);
    Files.createDirectories(noImages.resolve("horses"));
    assertTrue(assertThrows(IllegalArgumentException.class, () -> ImageFolder.scan(noImages)).getMessage()
        .contains("has no images"));
  }

  @Test
  void cachedFeaturesTrainTheHeadAsTheImagesDo() throws IOException {
    Path root = Images.folder(tmp.resolve("data"), CLASSES, 10, 32, 6);
    ImageFolder folder = ImageFolder.scan(root);
    ImageDataset.Options options = ImageDataset.Options.of(32, 32, ImageOps.Preprocess.CAFFE, 4);
    TrainingPlan plan = TrainingPlan.builder().head(HeadSpec.classifier(3).at("block3_pool").hidden(8, 0.25))
        .optimizer(new OptimizerSpec.Adam(0.01, 0.9, 0.999, 1e-7)).stage(Stage.of(Selector.parse("head"))).build();
    Fit.Options fit = new Fit.Options(4, OptionalInt.empty());
    Map<String, NpyArray> images;
    Map<String, NpyArray> cached;
    double plainSeconds;
    double cachedSeconds;
    boolean spilled;
    try (ImageDataset data = ImageDataset.open(folder.items(), options);
        KerasSavedModel model = model(); Trainer trainer = new Trainer(model, plan)) {
      long t0 = System.nanoTime();
      Fit.run(trainer, Fit.images(data, "keras_tensor"), Optional.empty(), fit, List.of(), Fit.Start.BEGINNING);
      plainSeconds = (System.nanoTime() - t0) / 1e9;
      images = trainer.values(trainer.headVariables());
    }
    try (ImageDataset data = ImageDataset.open(folder.items(), options);
        KerasSavedModel model = model(); Trainer trainer = new Trainer(model, plan)) {
      long t0 = System.nanoTime();
      // A bound below the features' size: they spill to a file, and must come back the same.
      try (FeatureCache cache = FeatureCache.build(trainer, data, "keras_tensor", 1024)) {
        spilled = cache.spilled();
        Fit.run(trainer, cache, Optional.empty(), fit, List.of(), Fit.Start.BEGINNING);
      }
      cachedSeconds = (System.nanoTime() - t0) / 1e9;
      cached = trainer.values(trainer.headVariables());
    }
    assertTrue(spilled, "the features went to disk past the bound");
    double worst = 0;
    for (String name : images.keySet()) {
      worst = Math.max(worst, NpyArray.relativeDifference(images.get(name).toDoubles(), cached.get(name).toDoubles()));
    }
    assertTrue(worst <= 1e-6, "training on cached features differs by " + worst);
    System.out.printf("feature cache: head weights differ by %.3g; 4 epochs %.2f s on images, %.2f s cached%n", worst,
        plainSeconds, cachedSeconds);
  }
}
