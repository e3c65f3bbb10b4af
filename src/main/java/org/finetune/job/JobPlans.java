package org.finetune.job;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.finetune.hint.Setting;
import org.finetune.train.GradualUnfreezing;
import org.finetune.train.HeadSpec;
import org.finetune.train.LearningRateSchedule;
import org.finetune.train.LossSpec;
import org.finetune.train.OutputLoss;
import org.finetune.train.Selector;
import org.finetune.train.Stage;
import org.finetune.train.TrainingPlan;

/** The training plan a job's settings make, with its model family's layer groups. */
final class JobPlans {
  private JobPlans() {}

  /**
   * The job's own plan, or one from its settings: the head (if any) or the outputs trained
   * together (if several, each with its loss and weight), the optimizer and schedule
   * over {@code totalSteps}, L2-SP, and the stages: what trains first, then one more of the
   * groups per stage when unfreezing gradually. A new head trains in every stage unless the
   * first stage's selector says otherwise (freezing it by name).
   */
  static TrainingPlan plan(FineTuneJob job, Optional<HeadSpec> head, List<String> familyGroups, LossSpec loss,
      List<OutputLoss> outputs, long totalSteps) {
    if (job.settings.plan.isPresent()) {
      return job.settings.plan.get();
    }
    TrainingPlan.Builder b = TrainingPlan.builder().loss(loss).optimizer(job.settings.optimizer)
        .fromLogits(job.settings.fromLogits && outputs.isEmpty() && loss.classifies());
    outputs.forEach(b::output);
    head.ifPresent(b::head);
    double rate = job.settings.optimizer.learningRate();
    switch (job.settings.schedule) {
      case CONSTANT -> { }
      case COSINE -> b.schedule(new LearningRateSchedule.CosineWarmup(0, rate, Math.max(1, totalSteps / 10),
          Math.max(1, totalSteps - totalSteps / 10), 0));
      case SLANTED -> b.schedule(new LearningRateSchedule.SlantedTriangular(rate, Math.max(1, totalSteps), 0.1, 32));
      default -> throw new IllegalStateException(job.settings.schedule.name());
    }
    if (job.settings.l2sp != 0) {
      b.l2sp(job.settings.l2sp);
    }
    job.settings.lowRank.ifPresent(b::lowRank);
    boolean adapters = job.settings.lowRank.isPresent() && job.settings.train.isEmpty()
        && job.settings.freeze.isEmpty();
    // With low-rank adapters and no other choice, the adapters alone train (and a new head beside them).
    Selector first = job.settings.freeze.<Selector>map(Selector.Not::new)
        .orElseGet(() -> job.settings.train.orElseGet(() -> adapters ? new Selector.Adapters()
            : head.isPresent() ? HEAD : new Selector.All()));
    // A new layer starts from random weights: it trains beside whatever the first stage names.
    boolean addHead = head.isPresent() && (adapters
        || job.settings.train.isPresent() && !selectsHead(job.settings.train.get()));
    if (job.settings.unfreezeEvery.isPresent()) {
      List<Selector> groups = job.settings.groups.orElseGet(() -> familyGroups.stream().map(Selector::parse).toList());
      if (groups.isEmpty()) {
        throw new JobException("gradual unfreezing needs layer groups, and the model is of no known family",
            Setting.GROUPS, "give its layer groups, top first");
      }
      List<Selector> selectors = new ArrayList<>();
      // Without a new head or an explicit first stage, the first stage is the top group itself.
      if (head.isPresent() || job.settings.train.isPresent() || job.settings.freeze.isPresent()) {
        selectors.add(first);
      }
      selectors.addAll(groups);
      List<Stage> stages = GradualUnfreezing.fromTop(selectors, job.settings.discriminativeFactor);
      b.stages(addHead ? stages.stream().map(JobPlans::withHead).toList() : stages);
    } else {
      b.stage(addHead ? Stage.of(HEAD, first) : Stage.of(first));
    }
    return b.build();
  }

  private static final Selector HEAD = new Selector.Block("head");

  private static boolean selectsHead(Selector s) {
    return s instanceof Selector.All || s.equals(HEAD);
  }

  private static Stage withHead(Stage s) {
    List<Stage.Group> groups = new ArrayList<>();
    groups.add(new Stage.Group(HEAD, 1.0));
    groups.addAll(s.groups());
    return new Stage(groups);
  }
}
