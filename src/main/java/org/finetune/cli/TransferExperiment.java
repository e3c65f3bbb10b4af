package org.finetune.cli;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;
import org.finetune.data.ImageDataset;
import org.finetune.data.ImageFolder;
import org.finetune.data.ImageOps;
import org.finetune.model.KerasSavedModel;
import org.finetune.train.Fit;
import org.finetune.train.GradualUnfreezing;
import org.finetune.train.HeadSpec;
import org.finetune.train.OptimizerSpec;
import org.finetune.train.Selector;
import org.finetune.train.Stage;
import org.finetune.train.Trainer;
import org.finetune.train.TrainingPlan;

/**
 * The seed's claim, measured: a model pretrained on a source task, fine-tuned on a few labelled
 * target images (a new head first, then gradual unfreezing from the top), against the same
 * architecture trained from scratch on the same images with the same budget (epochs, batch size,
 * optimizer, learning rate). Accuracy is on held-out target images.
 */
final class TransferExperiment {
  private final int epochsPerStage;
  static final List<String> GROUPS = List.of("head", "block:block5", "block:block4");

  /** One arm's run. */
  record Result(String arm, long seed, double accuracy, List<Fit.Epoch> history, double seconds) {}

  private final Path pretrained;
  private final Path scratch;
  private final ImageFolder train;
  private final ImageFolder test;
  private final int batchSize;

  TransferExperiment(Path pretrained, Path scratch, Path trainDir, Path testDir, int batchSize, int epochsPerStage) {
    this.epochsPerStage = epochsPerStage;
    this.pretrained = pretrained;
    this.scratch = scratch;
    this.train = ImageFolder.scan(trainDir);
    this.test = ImageFolder.scan(testDir);
    if (!train.classes().equals(test.classes())) {
      throw new IllegalArgumentException("train classes " + train.classes() + " differ from test classes "
          + test.classes());
    }
    this.batchSize = batchSize;
  }

  ImageFolder train() {
    return train;
  }

  ImageFolder test() {
    return test;
  }

  int epochs() {
    return epochsPerStage * GROUPS.size();
  }

  /** Fine-tuning: a new head on block5_pool, then block5, then block4, each stage 4 epochs, lower groups slower. */
  TrainingPlan fineTuning(long seed) {
    List<Selector> groups = GROUPS.stream().map(Selector::parse).toList();
    return TrainingPlan.builder().head(HeadSpec.classifier(train.classes().size()).at("block5_pool").seed(seed))
        .optimizer(new OptimizerSpec.Adam(1e-3, 0.9, 0.999, 1e-7))
        .stages(GradualUnfreezing.fromTop(groups, GradualUnfreezing.DEFAULT_FACTOR)).build();
  }

  /** From scratch: the same architecture and head, every layer training from the first step. */
  TrainingPlan fromScratch(long seed) {
    return TrainingPlan.builder().head(HeadSpec.classifier(train.classes().size()).at("block5_pool").seed(seed))
        .optimizer(new OptimizerSpec.Adam(1e-3, 0.9, 0.999, 1e-7)).stage(Stage.of(Selector.parse("all"))).build();
  }

  Result run(String arm, Path model, TrainingPlan plan, long seed, List<Fit.Callback> callbacks,
      Optional<java.util.function.Consumer<Trainer>> after) {
    long start = System.nanoTime();
    ImageDataset.Options options = ImageDataset.Options.of(32, 32, ImageOps.Preprocess.CAFFE, batchSize).seeded(seed);
    try (ImageDataset trainData = ImageDataset.open(train.items(), options);
        ImageDataset testData = ImageDataset.open(test.items(), options.shuffled(false));
        KerasSavedModel m = KerasSavedModel.open(model); Trainer trainer = new Trainer(m, plan)) {
      String input = m.info().selectedSignature().inputs().get(0).key();
      List<Fit.Epoch> history = Fit.run(trainer, Fit.images(trainData, input), Optional.empty(),
          new Fit.Options(epochs(), plan.stages().size() > 1 ? OptionalInt.of(epochsPerStage) : OptionalInt.empty()),
          callbacks, Fit.Start.BEGINNING);
      double accuracy = accuracy(trainer, testData, input);
      after.ifPresent(a -> a.accept(trainer));
      return new Result(arm, seed, accuracy, history, (System.nanoTime() - start) / 1e9);
    }
  }

  Result fineTune(long seed, List<Fit.Callback> callbacks, Optional<java.util.function.Consumer<Trainer>> after) {
    return run("fine-tuned", pretrained, fineTuning(seed), seed, callbacks, after);
  }

  Result scratch(long seed) {
    return run("from scratch", scratch, fromScratch(seed), seed, List.of(), Optional.empty());
  }

  /** Top-1 accuracy of the trainer's predictions over a dataset. */
  static double accuracy(Trainer trainer, ImageDataset data, String input) {
    List<ImageClassifier.Prediction> predictions =
        ImageClassifier.run(data, images -> trainer.predict(java.util.Map.of(input, images)));
    long hits = predictions.stream().filter(p -> p.top() == p.label()).count();
    return predictions.isEmpty() ? Double.NaN : (double) hits / predictions.size();
  }

  /** Prints the comparison table; returns the mean accuracies {fine-tuned, scratch}. */
  static double[] table(List<Result> fine, List<Result> scratch, PrintWriter out) {
    out.printf("%-6s %12s %14s%n", "seed", "fine-tuned", "from scratch");
    double f = 0;
    double s = 0;
    for (int i = 0; i < fine.size(); i++) {
      out.printf("%-6d %11.1f%% %13.1f%%%n", fine.get(i).seed(), 100 * fine.get(i).accuracy(),
          100 * scratch.get(i).accuracy());
      f += fine.get(i).accuracy();
      s += scratch.get(i).accuracy();
    }
    f /= fine.size();
    s /= scratch.size();
    out.printf("%-6s %11.1f%% %13.1f%%   (fine-tuned minus from scratch: %+.1f points)%n", "mean", 100 * f, 100 * s, 100 * (f - s));
    return new double[] {f, s};
  }

  static List<Long> seeds(int n) {
    List<Long> out = new ArrayList<>();
    for (int i = 1; i <= n; i++) {
      out.add((long) i);
    }
    return out;
  }
}
