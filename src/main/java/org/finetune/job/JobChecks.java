package org.finetune.job;

import org.finetune.hint.Setting;

/** Which of a job's settings go together: each mismatch is refused, naming the setting to change. */
final class JobChecks {
  private JobChecks() {}

  static void check(FineTuneJob.Builder s) {
    if (s.train.isPresent() && s.freeze.isPresent()) {
      throw new JobException("a job takes what trains or what stays frozen, not both", Setting.PLAN,
          "set one of them");
    }
    if (s.checkpointEvery > 0 && s.checkpoints.isEmpty()) {
      throw new JobException("checkpoints within an epoch need a checkpoint directory", Setting.PLAN,
          "set where checkpoints go");
    }
    if (!s.newHead && !(s.data instanceof JobData.Clips) && (s.hiddenUnits.isPresent() || s.featuresAt.isPresent())) {
      throw new JobException("a hidden layer and a feature layer shape a new head", Setting.HEAD,
          "ask for a new head");
    }
    if (!s.newHead && (s.headUnits.isPresent() || s.headActivation.isPresent())) {
      throw new JobException("a head's outputs and activation shape a new head", Setting.HEAD, "ask for a new head");
    }
    if (s.loss.isPresent() && !s.outputLosses.isEmpty()) {
      throw new JobException("a job takes one loss, or a loss per output, not both", Setting.LOSS,
          "name the loss of each output, or one loss for a single output");
    }
    if (!(s.data instanceof JobData.Arrays) && (s.headUnits.isPresent() || s.headActivation.isPresent()
        || s.loss.isPresent() || !s.outputLosses.isEmpty() || !s.lossWeights.isEmpty() || s.fromLogits || !s.shuffle)) {
      throw new JobException("a head's outputs and activation, the loss and unshuffled epochs are settings of the"
          + " arrays task; the " + s.data.task() + " task decides them", Setting.DATA, "leave them out");
    }
    if (s.data instanceof JobData.Arrays && (s.preprocess.isPresent() || s.imageSize.isPresent() || s.flip || s.zoom > 0
        || s.brightness > 0 || s.sequenceLength.isPresent())) {
      throw new JobException("preprocessing, image sizes, augmentation and sequence lengths apply to images and text;"
          + " arrays go to the model as they are", Setting.DATA, "leave them out, or prepare the arrays so");
    }
    if (s.data instanceof JobData.Text && (s.newHead || s.featuresAt.isPresent() || s.preprocess.isPresent()
        || s.imageSize.isPresent() || s.flip || s.zoom > 0 || s.brightness > 0)) {
      throw new JobException("a new head, preprocessing, image sizes and augmentation apply to images, not to text",
          Setting.DATA, "leave them out for a causal language model");
    }
  }
}
