package org.finetune.job;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalInt;
import org.finetune.data.ImageOps;
import org.finetune.hint.Setting;
import org.finetune.model.KerasSavedModel;
import org.finetune.train.Fit;
import org.finetune.train.GradualUnfreezing;
import org.finetune.train.HeadSpec;
import org.finetune.train.LossSpec;
import org.finetune.train.LowRankSpec;
import org.finetune.train.OptimizerSpec;
import org.finetune.train.Selector;
import org.finetune.train.TrainingPlan;

/**
 * One fine-tuning run, as {@code finetune train} runs it, from a library: data in, trained and
 * exported model out, as Keras's {@code fit} with its callbacks and {@code export}. Every setting
 * has the command line's default; the common call names only what differs:
 *
 * <pre>{@code
 * FineTuneResult r = FineTuneJob.builder(model).data(JobData.images(dir)).newHead()
 *     .unfreezeGradually(2).epochs(6).checkpoints(ckpt).exportTo(out).build().run();
 * }</pre>
 *
 * <p>The model's family ({@link ModelFamily}) gives the defaults a setting leaves open: input
 * size, preprocessing, where a new head goes, the layer groups of gradual unfreezing. A model of
 * no known family gets no silent guess: the job states its choice in a {@link JobListener#message}
 * or refuses with a {@link JobException} that says what to set. When a new head alone trains and
 * nothing is augmented, the base's features are computed once and cached (as DL4J's
 * {@code featurize} does), which gives the same weights as running the base every step.
 *
 * <p>Given an open model ({@link #builder(KerasSavedModel)}), the job trains it in place, in its
 * runtime, as Keras's {@code fit} does, and leaves it open: the ops training adds stay in the
 * model's graph (a TensorFlow graph only grows). Given how to open one
 * ({@link #builder(KerasSavedModel.Loader)}), the job opens its own copy and closes it at the end,
 * freeing everything the run created: what a service that fine-tunes on request wants.
 */
public final class FineTuneJob {
  /** The learning-rate schedule over the whole run. */
  public enum Schedule {
    /** The optimizer's rate throughout. */
    CONSTANT,
    /** 10% linear warm-up, then cosine decay to 0 (Keras's {@code CosineDecay} with warm-up). */
    COSINE,
    /** ULMFiT's slanted triangular rate: a short rise (10% of the run) and a long fall. */
    SLANTED
  }

  private final Optional<KerasSavedModel> model;
  private final Optional<KerasSavedModel.Loader> loader;
  /** The job's settings, a copy of its builder's when it was built. */
  final Builder settings;

  private FineTuneJob(Builder b) {
    this.model = b.model;
    this.loader = b.loader;
    Objects.requireNonNull(b.data, "data: give the job its data (JobData.images, clips or text)");
    this.settings = b.copy();
    JobChecks.check(settings);
  }

  /** A job that trains {@code model} in place (opened by the caller, who closes it after the job). */
  public static Builder builder(KerasSavedModel model) {
    return new Builder(Optional.of(model), Optional.empty());
  }

  /**
   * A job that opens its own copy of a model as {@code loader} says, trains it, and closes it when
   * the run ends, so that nothing the run created outlives it.
   */
  public static Builder builder(KerasSavedModel.Loader loader) {
    return new Builder(Optional.empty(), Optional.of(loader));
  }

  /**
   * Runs the job: reads the data, resolves the plan, trains (resuming when asked), and exports.
   *
   * @throws JobException when the data, model or settings cannot make a run (nothing was written)
   * @throws Fit.NonFiniteLossException when a step's loss or gradient was not finite and the job stops on that
   */
  public FineTuneResult run() {
    if (model.isPresent()) {
      return new JobRun(this, model.get()).run();
    }
    try (KerasSavedModel own = loader.orElseThrow().load()) {
      return new JobRun(this, own).run();
    }
  }

  /** How a job is set up; every setting has the command line's default. */
  public static final class Builder implements Cloneable {
    private final Optional<KerasSavedModel> model;
    private final Optional<KerasSavedModel.Loader> loader;
    JobData data;
    long seed = 1234;
    OptionalInt batchSize = OptionalInt.empty();
    int epochs = 5;
    OptionalDouble validationSplit = OptionalDouble.empty();
    OptionalInt sequenceLength = OptionalInt.empty();
    boolean newHead;
    OptionalInt hiddenUnits = OptionalInt.empty();
    double dropout;
    Optional<String> featuresAt = Optional.empty();
    OptionalInt headUnits = OptionalInt.empty();
    Optional<HeadSpec.Activation> headActivation = Optional.empty();
    Optional<LossSpec> loss = Optional.empty();
    java.util.Map<String, LossSpec> outputLosses = new java.util.LinkedHashMap<>();
    java.util.Map<String, Double> lossWeights = new java.util.LinkedHashMap<>();
    boolean fromLogits;
    boolean shuffle = true;
    HeadSpec.Temporal temporal = HeadSpec.Temporal.CONV;
    Optional<Selector> train = Optional.empty();
    Optional<Selector> freeze = Optional.empty();
    OptionalInt unfreezeEvery = OptionalInt.empty();
    Optional<List<Selector>> groups = Optional.empty();
    double discriminativeFactor = GradualUnfreezing.DEFAULT_FACTOR;
    OptimizerSpec optimizer = OptimizerSpec.Adam.defaults();
    Schedule schedule = Schedule.CONSTANT;
    double l2sp;
    Optional<LowRankSpec> lowRank = Optional.empty();
    Optional<TrainingPlan> plan = Optional.empty();
    Optional<ImageOps.Preprocess> preprocess = Optional.empty();
    Optional<int[]> imageSize = Optional.empty();
    boolean flip;
    double zoom;
    double brightness;
    boolean strict;
    boolean featureCache = true;
    OptionalInt earlyStopping = OptionalInt.empty();
    OptionalInt reduceLr = OptionalInt.empty();
    Optional<Path> checkpoints = Optional.empty();
    int checkpointEvery;
    Optional<Path> resume = Optional.empty();
    Optional<Path> history = Optional.empty();
    Optional<Path> tensorBoard = Optional.empty();
    Optional<Path> curves = Optional.empty();
    Optional<Path> exportTo = Optional.empty();
    Optional<Path> adaptersTo = Optional.empty();
    boolean overwrite;
    Fit.NonFinite onNonFinite = Fit.NonFinite.STOP;
    JobListener listener = JobListener.silent();
    List<Fit.Callback> callbacks = new ArrayList<>();

    private Builder(Optional<KerasSavedModel> model, Optional<KerasSavedModel.Loader> loader) {
      this.model = model;
      this.loader = loader;
    }

    /** A copy that later changes to this builder do not reach. */
    Builder copy() {
      try {
        Builder c = (Builder) super.clone();
        c.outputLosses = new java.util.LinkedHashMap<>(outputLosses);
        c.lossWeights = new java.util.LinkedHashMap<>(lossWeights);
        c.callbacks = new ArrayList<>(callbacks);
        return c;
      } catch (CloneNotSupportedException e) {
        throw new AssertionError(e);
      }
    }

    /** What to train on (required); its kind decides the task. */
    public Builder data(JobData d) {
      this.data = Objects.requireNonNull(d, "data");
      return this;
    }

    /** Seeds the split, shuffling, augmentation and a new head's initial weights (default 1234). */
    public Builder seed(long s) {
      this.seed = s;
      return this;
    }

    /** Examples per step (default 32 images or clips, 8 blocks of text). */
    public Builder batchSize(int n) {
      if (n < 1) {
        throw new JobException("the batch size must be >= 1, got " + n, Setting.NONE, "");
      }
      this.batchSize = OptionalInt.of(n);
      return this;
    }

    /** Epochs in all, counting those before a resume (default 5). */
    public Builder epochs(int n) {
      if (n < 1) {
        throw new JobException("a job trains at least 1 epoch, got " + n, Setting.NONE, "");
      }
      this.epochs = n;
      return this;
    }

    /** The share held out for validation (default 0.2 of images or clips, 0.1 of text documents; 0: none). */
    public Builder validationSplit(double fraction) {
      if (!(fraction >= 0 && fraction < 1)) {
        throw new JobException("the validation share must be in [0, 1), got " + fraction,
            Setting.VALIDATION, "");
      }
      this.validationSplit = OptionalDouble.of(fraction);
      return this;
    }

    /** Text: tokens per block (default 128, at most the model's positions). */
    public Builder sequenceLength(int tokens) {
      this.sequenceLength = OptionalInt.of(tokens);
      return this;
    }

    /**
     * Puts a new classifier on the model, one output per class, on the family's feature layer
     * (or {@link #featuresAt}); by default only the head trains at first. Clips always get one.
     */
    public Builder newHead() {
      this.newHead = true;
      return this;
    }

    /** A hidden Dense + ReLU layer of {@code units} in the new head, then dropout at {@code rate}. */
    public Builder headHidden(int units, double rate) {
      this.hiddenUnits = OptionalInt.of(units);
      this.dropout = rate;
      return this;
    }

    /** The layer whose output feeds the new head (default: the family's feature layer). */
    public Builder featuresAt(String layer) {
      this.featuresAt = Optional.of(layer);
      return this;
    }

    /** Arrays: the new head's outputs (default: one per class for integer targets, else the targets' width). */
    public Builder headUnits(int units) {
      if (units < 1) {
        throw new JobException("a head needs at least one output, got " + units, Setting.HEAD, "");
      }
      this.headUnits = OptionalInt.of(units);
      return this;
    }

    /** Arrays: the head's output activation (default: softmax for labels, sigmoid for binary, linear for values). */
    public Builder headActivation(HeadSpec.Activation a) {
      this.headActivation = Optional.of(Objects.requireNonNull(a, "activation"));
      return this;
    }

    /**
     * Arrays: the loss, by Keras's names (default: read from the targets and the output's
     * activation, and stated; refused when they leave it open).
     */
    public Builder loss(LossSpec l) {
      this.loss = Optional.of(Objects.requireNonNull(l, "loss"));
      return this;
    }

    /** Arrays, several outputs: output {@code output}'s loss, as Keras's {@code compile(loss={...})}. */
    public Builder loss(String output, LossSpec l) {
      this.outputLosses.put(Objects.requireNonNull(output, "output"), Objects.requireNonNull(l, "loss"));
      return this;
    }

    /** Arrays, several outputs: output {@code output}'s loss weight, as Keras's {@code loss_weights} (default 1). */
    public Builder lossWeight(String output, double weight) {
      if (!(weight >= 0) || Double.isInfinite(weight)) {
        throw new JobException("a loss weight must be a finite number >= 0, got " + weight + " for " + output,
            Setting.LOSS, "");
      }
      this.lossWeights.put(Objects.requireNonNull(output, "output"), weight);
      return this;
    }

    /**
     * Arrays: the outputs' values are logits, as Keras's {@code from_logits=True}: a cross-entropy
     * applies the softmax (sigmoid, for one output unit) itself, and a new head ends linear.
     */
    public Builder fromLogits(boolean on) {
      this.fromLogits = on;
      return this;
    }

    /** Arrays: whether to reshuffle the examples every epoch (default true, as Keras's {@code fit}). */
    public Builder shuffle(boolean on) {
      this.shuffle = on;
      return this;
    }

    /** Clips: how the head joins frames (default {@link HeadSpec.Temporal#CONV}, which sees their order). */
    public Builder temporal(HeadSpec.Temporal t) {
      this.temporal = Objects.requireNonNull(t, "temporal");
      return this;
    }

    /** What trains at first (default: the new head, else everything); a new head always trains besides. */
    public Builder train(Selector s) {
      this.train = Optional.of(s);
      return this;
    }

    /** What stays frozen at first; everything else trains. */
    public Builder freeze(Selector s) {
      this.freeze = Optional.of(s);
      return this;
    }

    /** Unfreezes one more layer group from the top every {@code epochs} epochs. */
    public Builder unfreezeGradually(int everyEpochs) {
      if (everyEpochs < 1) {
        throw new JobException("gradual unfreezing needs a whole number of epochs >= 1 per group, got " + everyEpochs,
            Setting.GROUPS, "");
      }
      this.unfreezeEvery = OptionalInt.of(everyEpochs);
      return this;
    }

    /** Layer groups for gradual unfreezing, top first (default: the family's). */
    public Builder groups(List<Selector> g) {
      this.groups = Optional.of(List.copyOf(g));
      return this;
    }

    /** Each lower group learns this many times slower (default ULMFiT's 2.6). */
    public Builder discriminativeFactor(double f) {
      this.discriminativeFactor = f;
      return this;
    }

    /** The optimizer (default Adam with Keras's defaults). */
    public Builder optimizer(OptimizerSpec spec) {
      this.optimizer = Objects.requireNonNull(spec, "optimizer");
      return this;
    }

    public Builder schedule(Schedule s) {
      this.schedule = Objects.requireNonNull(s, "schedule");
      return this;
    }

    /** L2-SP: pulls trained pretrained weights back towards their start with this weight (default 0). */
    public Builder l2sp(double weight) {
      this.l2sp = weight;
      return this;
    }

    /**
     * Low-rank adapters (LoRA) on chosen kernels, which stay frozen; unless {@link #train} or
     * {@link #freeze} says otherwise, the adapters alone train (beside a new head). Exports merge them.
     */
    public Builder lowRank(LowRankSpec spec) {
      this.lowRank = Optional.of(Objects.requireNonNull(spec, "lowRank"));
      return this;
    }

    /** The whole plan, instead of the settings above that make one. */
    public Builder plan(TrainingPlan p) {
      this.plan = Optional.of(p);
      return this;
    }

    /** Images: the preprocessing (default: the family's). */
    public Builder preprocess(ImageOps.Preprocess p) {
      this.preprocess = Optional.of(p);
      return this;
    }

    /** Images: the size, for a model that takes any size. */
    public Builder imageSize(int height, int width) {
      this.imageSize = Optional.of(new int[] {height, width});
      return this;
    }

    /** Augmentation: random horizontal flips. */
    public Builder flip(boolean on) {
      this.flip = on;
      return this;
    }

    /** Augmentation: random zoom-in, crops of {@code 1 - f} to 1 of each side. */
    public Builder zoom(double f) {
      this.zoom = f;
      return this;
    }

    /** Augmentation: random brightness shifts of up to {@code f * 255}. */
    public Builder brightness(double f) {
      this.brightness = f;
      return this;
    }

    /** Fail on an unreadable image or invalid UTF-8 instead of skipping (replacing) it. */
    public Builder strict(boolean on) {
      this.strict = on;
      return this;
    }

    /** Whether to cache the base's features when a new head alone trains (default true). */
    public Builder featureCache(boolean on) {
      this.featureCache = on;
      return this;
    }

    /** Keras's {@code EarlyStopping(patience, restore_best_weights=True)} on the monitored value. */
    public Builder earlyStopping(int patience) {
      this.earlyStopping = OptionalInt.of(patience);
      return this;
    }

    /** Keras's {@code ReduceLROnPlateau(factor=0.5, patience)} on the monitored value. */
    public Builder reduceLrOnPlateau(int patience) {
      this.reduceLr = OptionalInt.of(patience);
      return this;
    }

    /** Writes checkpoints: {@code dir/last} every epoch, {@code dir/best}. */
    public Builder checkpoints(Path dir) {
      this.checkpoints = Optional.of(dir);
      return this;
    }

    /** Also writes {@code dir/last} every {@code batches} batches within an epoch. */
    public Builder checkpointEvery(int batches) {
      if (batches < 1) {
        throw new JobException("checkpoints within an epoch come every 1 or more batches, got " + batches,
            Setting.PLAN, "");
      }
      this.checkpointEvery = batches;
      return this;
    }

    /** Continues from a checkpoint (e.g. {@code dir/last}), with its plan. */
    public Builder resume(Path checkpoint) {
      this.resume = Optional.of(checkpoint);
      return this;
    }

    /** Writes the per-epoch history as CSV (appended to when resuming). */
    public Builder history(Path csv) {
      this.history = Optional.of(csv);
      return this;
    }

    /** Writes TensorBoard event files ({@code dir/train}, {@code dir/validation}). */
    public Builder tensorBoard(Path dir) {
      this.tensorBoard = Optional.of(dir);
      return this;
    }

    /** Draws the training curves as a PNG, redrawn every epoch. */
    public Builder curves(Path png) {
      this.curves = Optional.of(png);
      return this;
    }

    /** Exports the fine-tuned SavedModel here at the end. */
    public Builder exportTo(Path dir) {
      this.exportTo = Optional.of(dir);
      return this;
    }

    /** With low-rank adapters: also writes them apart from the base here (see {@code Exporter.exportAdapters}). */
    public Builder exportAdaptersTo(Path dir) {
      this.adaptersTo = Optional.of(dir);
      return this;
    }

    /** Replaces an existing export directory (refused otherwise). */
    public Builder overwrite(boolean on) {
      this.overwrite = on;
      return this;
    }

    /** What a non-finite loss or gradient does (default: stop). */
    public Builder onNonFinite(Fit.NonFinite policy) {
      this.onNonFinite = Objects.requireNonNull(policy, "onNonFinite");
      return this;
    }

    /** Hears the run's messages, warnings and progress (default: nothing). */
    public Builder listener(JobListener l) {
      this.listener = Objects.requireNonNull(l, "listener");
      return this;
    }

    /** One more callback of the training loop, after the job's own. */
    public Builder callback(Fit.Callback c) {
      this.callbacks.add(Objects.requireNonNull(c, "callback"));
      return this;
    }

    public FineTuneJob build() {
      return new FineTuneJob(this);
    }
  }
}
