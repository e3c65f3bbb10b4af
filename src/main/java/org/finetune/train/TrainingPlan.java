package org.finetune.train;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalDouble;
import org.finetune.savedmodel.SavedModelInspector;

/**
 * Everything that decides how a model trains: the signature and output it trains through, the
 * loss, the optimizer, the stages (which layers train, at which learning-rate factors), the
 * learning-rate schedule, gradient clipping and the L2-SP penalty. Immutable; build with
 * {@link #builder()}.
 *
 * @param head a new head on the model (empty: train the signature's own output)
 * @param outputs several signature outputs trained together, each with its loss and weight (empty:
 *     one output, {@code output}, with {@code loss})
 * @param fromLogits the output's values are logits, as Keras's {@code from_logits=True}: a
 *     cross-entropy applies the softmax (sigmoid) itself (with several outputs, each
 *     {@link OutputLoss} says it for its own)
 * @param l2sp weight of the L2-SP penalty {@code l2sp / 2 * sum ||w - w_pretrained||^2} over the
 *     pretrained variables a stage trains (a new head's are not: they have no pretrained value; 0: off)
 * @param lowRank low-rank adapters (LoRA) on chosen kernels, which then stay frozen while their
 *     adapters train wherever a stage selects the kernel's layer; merged into the kernels at export
 */
public record TrainingPlan(String signature, Optional<String> output, LossSpec loss, OptimizerSpec optimizer,
    List<Stage> stages, LearningRateSchedule schedule, OptionalDouble clipGlobalNorm, double l2sp,
    Optional<HeadSpec> head, List<OutputLoss> outputs, boolean fromLogits, Optional<LowRankSpec> lowRank) {
  public TrainingPlan {
    Objects.requireNonNull(signature, "signature");
    Objects.requireNonNull(output, "output");
    Objects.requireNonNull(loss, "loss");
    Objects.requireNonNull(optimizer, "optimizer");
    Objects.requireNonNull(schedule, "schedule");
    Objects.requireNonNull(clipGlobalNorm, "clipGlobalNorm");
    Objects.requireNonNull(head, "head");
    Objects.requireNonNull(lowRank, "lowRank");
    if (head.isPresent() && output.isPresent() && head.get().at().isPresent()) {
      throw new IllegalArgumentException("a head on layer " + head.get().at().get() + " replaces the model's outputs;"
          + " do not name output " + output.get() + " too");
    }
    if (stages.isEmpty()) {
      throw new IllegalArgumentException("a plan needs at least one stage");
    }
    outputs = List.copyOf(outputs);
    if (!outputs.isEmpty() && (head.isPresent() || output.isPresent())) {
      throw new IllegalArgumentException("a plan trains several outputs, or one output or new head, not both");
    }
    if (outputs.size() == 1) {
      throw new IllegalArgumentException("one output trains with the plan's output and loss, not a list of one");
    }
    java.util.Set<String> seen = new java.util.HashSet<>();
    for (OutputLoss o : outputs) {
      if (!seen.add(o.output())) {
        throw new IllegalArgumentException("output " + o.output() + " is listed twice");
      }
    }
    stages = List.copyOf(stages);
    if (clipGlobalNorm.isPresent() && !(clipGlobalNorm.getAsDouble() > 0)) {
      throw new IllegalArgumentException("the global clipping norm must be positive, got " + clipGlobalNorm.getAsDouble());
    }
    if (!(l2sp >= 0) || Double.isInfinite(l2sp)) {
      throw new IllegalArgumentException("the L2-SP weight must be >= 0, got " + l2sp);
    }
  }

  public static Builder builder() {
    return new Builder();
  }

  /** Builds a {@link TrainingPlan}; defaults: serving_default, its only output, Adam, all layers, constant rate. */
  public static final class Builder {
    private String signature = SavedModelInspector.DEFAULT_SIGNATURE;
    private Optional<String> output = Optional.empty();
    private LossSpec loss = LossSpec.SPARSE_CATEGORICAL_CROSSENTROPY;
    private OptimizerSpec optimizer = OptimizerSpec.Adam.defaults();
    private final List<Stage> stages = new ArrayList<>();
    private LearningRateSchedule schedule;
    private OptionalDouble clip = OptionalDouble.empty();
    private double l2sp;
    private HeadSpec head;
    private final List<OutputLoss> outputs = new ArrayList<>();
    private boolean fromLogits;
    private LowRankSpec lowRank;

    private Builder() {}

    public Builder signature(String name) {
      this.signature = name;
      return this;
    }

    public Builder output(String key) {
      this.output = Optional.of(key);
      return this;
    }

    public Builder loss(LossSpec spec) {
      this.loss = spec;
      return this;
    }

    public Builder optimizer(OptimizerSpec spec) {
      this.optimizer = spec;
      return this;
    }

    /** Adds a stage; a plan without stages trains every layer. */
    public Builder stage(Stage stage) {
      this.stages.add(stage);
      return this;
    }

    public Builder stages(List<Stage> list) {
      this.stages.addAll(list);
      return this;
    }

    /** The base learning-rate schedule (default: the optimizer's learning rate, constant). */
    public Builder schedule(LearningRateSchedule s) {
      this.schedule = s;
      return this;
    }

    public Builder clipGlobalNorm(double norm) {
      this.clip = OptionalDouble.of(norm);
      return this;
    }

    public Builder l2sp(double weight) {
      this.l2sp = weight;
      return this;
    }

    /** Puts a new head on the model; the loss is then taken on the head's output. */
    public Builder head(HeadSpec spec) {
      this.head = spec;
      return this;
    }

    /**
     * Trains this output too, with its loss and weight (Keras's multi-output {@code compile});
     * with two or more, the plan's own output and loss are not used.
     */
    public Builder output(OutputLoss o) {
      this.outputs.add(o);
      return this;
    }

    /** The output's values are logits (Keras's {@code from_logits=True}); default: probabilities. */
    public Builder fromLogits(boolean on) {
      this.fromLogits = on;
      return this;
    }

    /** Trains low-rank adapters on chosen kernels instead of the kernels themselves (see {@link LowRankSpec}). */
    public Builder lowRank(LowRankSpec spec) {
      this.lowRank = spec;
      return this;
    }

    public TrainingPlan build() {
      List<Stage> s = stages.isEmpty() ? List.of(Stage.of(new Selector.All())) : stages;
      LearningRateSchedule lr = schedule != null ? schedule
          : new LearningRateSchedule.Constant(optimizer.learningRate());
      return new TrainingPlan(signature, output, loss, optimizer, s, lr, clip, l2sp, Optional.ofNullable(head),
          outputs, fromLogits, Optional.ofNullable(lowRank));
    }
  }
}
