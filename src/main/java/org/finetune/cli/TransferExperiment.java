package org.finetune.cli;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.Random;
import java.util.TreeMap;
import java.util.function.Consumer;
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
import org.finetune.train.StepResult;
import org.finetune.train.Trainer;
import org.finetune.train.TrainingPlan;

/**
 * The seed's claim, measured: a model pretrained on a source task, fine-tuned on a few labelled
 * target images, against the same model with its base frozen (feature extraction) and the same
 * architecture trained from scratch, on the same images with the same budget (epochs, batch size,
 * optimizer, no augmentation). Each arm picks its learning rate from {@link #RATES} by accuracy on
 * a validation split of its own training images (a quarter of each class), then trains on all of
 * them at that rate; accuracy is on held-out target images, after every epoch.
 */
final class TransferExperiment {
  /** How the arms train. */
  enum Arm {
    /** A new head on block5_pool, then block5, then block4 (gradual unfreezing, lower groups slower). */
    FINE_TUNED("fine-tuned"),
    /** The pretrained base frozen: the new head alone. */
    FEATURE_EXTRACTION("feature extraction"),
    /** The same architecture untrained, every layer training from the first step. */
    SCRATCH("from scratch"),
    /** For forgetting: the new head and every pretrained layer training from the first step. */
    ALL_LAYERS("all layers at once"),
    /** For forgetting: fine-tuned as {@link #FINE_TUNED}, with the L2-SP penalty {@link #L2SP}. */
    L2SP_GRADUAL("fine-tuned, L2-SP");

    final String label;

    Arm(String label) {
      this.label = label;
    }
  }

  /** The learning rates (Adam) every arm picks from. */
  static final List<Double> RATES = List.of(1e-4, 3e-4, 1e-3, 3e-3);
  static final double BASE_RATE = 1e-3;
  static final List<String> GROUPS = List.of("head", "block:block5", "block:block4");
  /** The share of each class's training images that picks the learning rate. */
  static final double VALIDATION_SHARE = 0.25;
  /** The batch size of held-out evaluation: 256 took 0.4 s for 5,000 images where 16 took 1.7 s. */
  static final int EVALUATION_BATCH = 256;
  /** The L2-SP weight of {@link Arm#L2SP_GRADUAL}, as the legal case study's. */
  static final double L2SP = LegalStudy.L2SP;

  /**
   * One arm's run on all its training images at the rate it picked.
   *
   * @param validationAccuracy by candidate rate: accuracy on the validation split after the budget
   * @param history per epoch; its {@code val_} logs are the held-out images'
   * @param epochSeconds the training time of each epoch (held-out evaluation excluded)
   */
  record Run(Arm arm, long seed, int epochs, double rate, Map<Double, Double> validationAccuracy,
      List<Fit.Epoch> history, List<Double> epochSeconds, double sourceAccuracy) {
    /** Held-out accuracy after the last epoch. */
    double accuracy() {
      return history.get(history.size() - 1).logs().get("val_accuracy");
    }

    /** Whether the training loss fell from the first epoch to the last. */
    boolean lossFell() {
      return history.get(history.size() - 1).logs().get("loss") < history.get(0).logs().get("loss");
    }
  }

  private final Path pretrained;
  private final Path scratch;
  private final Path trainRoot;
  private final ImageFolder test;
  private final int batchSize;

  /**
   * @param trainRoot the training images: {@code seed<k>/} folders of class folders, one per
   *     seed's draw, or class folders used for every seed
   */
  TransferExperiment(Path pretrained, Path scratch, Path trainRoot, Path testDir, int batchSize) {
    this.pretrained = pretrained;
    this.scratch = scratch;
    this.trainRoot = trainRoot;
    this.test = ImageFolder.scan(testDir);
    this.batchSize = batchSize;
  }

  ImageFolder test() {
    return test;
  }

  /** The training images of a seed's draw. */
  ImageFolder train(long seed) {
    Path drawn = trainRoot.resolve("seed" + seed);
    ImageFolder f = ImageFolder.scan(Files.isDirectory(drawn) ? drawn : trainRoot);
    if (!f.classes().equals(test.classes())) {
      throw new IllegalArgumentException("training classes " + f.classes() + " differ from test classes "
          + test.classes());
    }
    return f;
  }

  /** Whether {@code seed} has its own draw of training images. */
  boolean drawn(long seed) {
    return Files.isDirectory(trainRoot.resolve("seed" + seed));
  }

  TrainingPlan plan(Arm arm, long seed) {
    TrainingPlan.Builder b = TrainingPlan.builder()
        .head(HeadSpec.classifier(test.classes().size()).at("block5_pool").seed(seed))
        .optimizer(new OptimizerSpec.Adam(BASE_RATE, 0.9, 0.999, 1e-7));
    List<Stage> gradual = GradualUnfreezing.fromTop(GROUPS.stream().map(Selector::parse).toList(),
        GradualUnfreezing.DEFAULT_FACTOR);
    return switch (arm) {
      case FINE_TUNED -> b.stages(gradual).build();
      case L2SP_GRADUAL -> b.stages(gradual).l2sp(L2SP).build();
      case FEATURE_EXTRACTION -> b.stage(Stage.of(Selector.parse("head"))).build();
      case SCRATCH, ALL_LAYERS -> b.stage(Stage.of(Selector.parse("all"))).build();
    };
  }

  /**
   * One arm and seed over the budgets (epochs, each a multiple of the stages): per budget, a run at
   * every candidate rate on three quarters of the images, scored on the quarter left, then the run
   * on all of them at the best rate (validation accuracy, then lower validation loss). Every run
   * starts from the same weights. {@code callbacks} gives each final run's callbacks;
   * {@code after} sees the trainer after the last budget's final run.
   */
  List<Run> run(Arm arm, long seed, List<Integer> budgets, java.util.function.IntFunction<List<Fit.Callback>> callbacks,
      Optional<Consumer<Trainer>> after) {
    return run(arm, seed, budgets, callbacks, after, Optional.empty());
  }

  /**
   * As above; with {@code source} (held-out images of the source task, class folders named by the
   * source model's output index), each final run also measures the source task's accuracy after
   * fine-tuning: the pretrained model's own output, computed with the fine-tuned weights.
   */
  List<Run> run(Arm arm, long seed, List<Integer> budgets, java.util.function.IntFunction<List<Fit.Callback>> callbacks,
      Optional<Consumer<Trainer>> after, Optional<ImageFolder> source) {
    ImageFolder train = train(seed);
    List<List<ImageFolder.Item>> split = stratified(train, VALIDATION_SHARE, seed);
    ImageDataset.Options options = ImageDataset.Options.of(32, 32, ImageOps.Preprocess.CAFFE, batchSize).seeded(seed);
    List<Run> runs = new ArrayList<>();
    Path state = null;
    try (ImageDataset all = ImageDataset.open(train.items(), options);
        ImageDataset fit = ImageDataset.open(split.get(0), options);
        ImageDataset validation = ImageDataset.open(split.get(1), options.shuffled(false));
        ImageDataset heldOut = ImageDataset.open(test.items(), evaluation());
        KerasSavedModel m = KerasSavedModel.open(arm == Arm.SCRATCH ? scratch : pretrained);
        Trainer trainer = new Trainer(m, plan(arm, seed))) {
      String input = m.info().selectedSignature().inputs().get(0).key();
      for (int i = trainer.stageCount() - 1; i >= 0; i--) {
        trainer.useStage(i);  // every stage's optimizer slots exist before the state is saved
      }
      state = Files.createTempDirectory("finetune-demo-");
      trainer.saveState(state.resolve("start"));
      for (int b = 0; b < budgets.size(); b++) {
        int epochs = budgets.get(b);
        Map<Double, Double> scores = new TreeMap<>();
        double best = Double.NaN;
        double bestAccuracy = -1;
        double bestLoss = Double.POSITIVE_INFINITY;
        for (double rate : RATES) {
          List<Fit.Epoch> h = fitFrom(trainer, state, rate, Fit.images(fit, input), Optional.of(Fit.images(validation,
              input)), epochs, List.of());
          Map<String, Double> last = h.get(h.size() - 1).logs();
          double accuracy = last.get("val_accuracy");
          double loss = last.get("val_loss");
          scores.put(rate, accuracy);
          if (accuracy > bestAccuracy || accuracy == bestAccuracy && loss < bestLoss) {
            best = rate;
            bestAccuracy = accuracy;
            bestLoss = loss;
          }
        }
        EpochTimer timer = new EpochTimer();
        List<Fit.Callback> cbs = new ArrayList<>(callbacks.apply(epochs));
        cbs.add(0, timer);
        List<Fit.Epoch> history = fitFrom(trainer, state, best, Fit.images(all, input),
            Optional.of(Fit.images(heldOut, input)), epochs, cbs);
        boolean last = b == budgets.size() - 1;
        double forgetting = last && source.isPresent() && arm != Arm.SCRATCH
            ? sourceAccuracy(trainer, source.get(), evaluation()) : Double.NaN;
        runs.add(new Run(arm, seed, epochs, best, scores, history, timer.seconds, forgetting));
        if (last) {
          after.ifPresent(a -> a.accept(trainer));
        }
      }
      return runs;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } finally {
      if (state != null) {
        org.finetune.export.AtomicFiles.deleteTemporary(state);
      }
    }
  }

  /**
   * How held-out images are read: in order, in batches of {@link #EVALUATION_BATCH}. A prediction
   * does not depend on the images beside it, so the batch only sets the speed (the training batch
   * is the protocol's).
   */
  static ImageDataset.Options evaluation() {
    return ImageDataset.Options.of(32, 32, ImageOps.Preprocess.CAFFE, EVALUATION_BATCH).shuffled(false);
  }

  /** A run from the saved starting weights at {@code rate}, stages spread evenly over the epochs. */
  private static List<Fit.Epoch> fitFrom(Trainer trainer, Path state, double rate, Fit.BatchSource data,
      Optional<Fit.BatchSource> validation, int epochs, List<Fit.Callback> callbacks) {
    trainer.useStage(0);
    trainer.restoreState(state.resolve("start"));
    trainer.setRateScale(rate / BASE_RATE);
    int stages = trainer.stageCount();
    OptionalInt every = stages > 1 ? OptionalInt.of(Math.max(1, epochs / stages)) : OptionalInt.empty();
    return Fit.run(trainer, data, validation, new Fit.Options(epochs, every), callbacks, Fit.Start.BEGINNING);
  }

  /**
   * Top-1 accuracy of the model's own output (the source classifier, which a new head leaves in the
   * graph, reading the weights training changed) on the source task's images.
   */
  static double sourceAccuracy(Trainer trainer, ImageFolder source, ImageDataset.Options options) {
    org.finetune.model.FlatSignature flat = trainer.flatSignature();
    String in = flat.inputs().values().iterator().next();
    String out = flat.outputs().values().iterator().next();
    long hits = 0;
    long n = 0;
    try (ImageDataset data = ImageDataset.open(source.items(), options);
        ImageDataset.Batches batches = data.epoch(0, 0)) {
      while (batches.hasNext()) {
        ImageDataset.Batch batch = batches.next();
        double[] scores;
        try (org.tensorflow.Tensor x = batch.images().toTensor()) {
          Map<String, org.tensorflow.Tensor> result = trainer.model().run(Map.of(in, x), List.of(out));
          try (org.tensorflow.Tensor t = result.get(out)) {
            scores = org.finetune.data.NpyArray.of(t).toDoubles();
          }
        }
        double[] labels = batch.labels().toDoubles();
        int classes = scores.length / labels.length;
        for (int i = 0; i < labels.length; i++) {
          int top = 0;
          for (int c = 1; c < classes; c++) {
            if (scores[i * classes + c] > scores[i * classes + top]) {
              top = c;
            }
          }
          hits += top == (int) labels[i] ? 1 : 0;
          n++;
        }
      }
    } catch (Exception e) {
      throw e instanceof RuntimeException r ? r : new IllegalStateException(e);
    }
    return (double) hits / n;
  }

  /** Each class's images split (seeded): {@code share} of them, at least one, for validation. */
  static List<List<ImageFolder.Item>> stratified(ImageFolder folder, double share, long seed) {
    Map<Integer, List<ImageFolder.Item>> byLabel = new TreeMap<>();
    folder.items().forEach(i -> byLabel.computeIfAbsent(i.label(), k -> new ArrayList<>()).add(i));
    List<ImageFolder.Item> fit = new ArrayList<>();
    List<ImageFolder.Item> validation = new ArrayList<>();
    Random random = new Random(seed);
    for (List<ImageFolder.Item> items : byLabel.values()) {
      List<ImageFolder.Item> shuffled = new ArrayList<>(items);
      Collections.shuffle(shuffled, random);
      int n = Math.max(1, (int) Math.round(share * shuffled.size()));
      if (n >= shuffled.size()) {
        throw new IllegalArgumentException("a class with " + shuffled.size() + " training images leaves none to fit"
            + " once " + n + " pick the learning rate");
      }
      validation.addAll(shuffled.subList(0, n));
      fit.addAll(shuffled.subList(n, shuffled.size()));
    }
    return List.of(fit, validation);
  }

  /** The training seconds of each epoch: from its start to its last step, held-out evaluation excluded. */
  static final class EpochTimer implements Fit.Callback {
    final List<Double> seconds = new ArrayList<>();
    private long start;
    private long last;

    @Override
    public void onEpochBegin(Fit.Control c) {
      start = System.nanoTime();
      last = start;
    }

    @Override
    public void onBatchEnd(Fit.Control c, StepResult result, long size) {
      last = System.nanoTime();
    }

    @Override
    public void onEpochEnd(Fit.Control c, Fit.Epoch epoch) {
      seconds.add((last - start) / 1e9);
    }
  }

  static List<Long> seeds(int n) {
    List<Long> out = new ArrayList<>();
    for (int i = 1; i <= n; i++) {
      out.add((long) i);
    }
    return out;
  }
}
