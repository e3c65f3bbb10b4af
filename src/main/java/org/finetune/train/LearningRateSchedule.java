package org.finetune.train;

/** The base learning rate as a function of the optimizer's step (0-based), as in Keras's schedules. */
public sealed interface LearningRateSchedule {
  double at(long step);

  /** The same rate at every step. */
  record Constant(double rate) implements LearningRateSchedule {
    public Constant {
      positive(rate);
    }

    @Override
    public double at(long step) {
      return rate;
    }
  }

  /** Keras {@code ExponentialDecay(staircase=True)}: {@code rate * factor^floor(step / every)}. */
  record StepDecay(double rate, long every, double factor) implements LearningRateSchedule {
    public StepDecay {
      positive(rate);
      if (every < 1 || !(factor > 0)) {
        throw new IllegalArgumentException("step decay needs every >= 1 and factor > 0");
      }
    }

    @Override
    public double at(long step) {
      return rate * Math.pow(factor, Math.floorDiv(step, every));
    }
  }

  /**
   * Keras {@code CosineDecay} with linear warmup: from {@code initial} to {@code target} over
   * {@code warmupSteps}, then a cosine from {@code target} down to {@code alpha * target} over
   * {@code decaySteps}, flat after that.
   */
  record CosineWarmup(double initial, double target, long warmupSteps, long decaySteps, double alpha)
      implements LearningRateSchedule {
    public CosineWarmup {
      if (initial < 0 || !(target > 0) || warmupSteps < 0 || decaySteps < 1 || alpha < 0 || alpha > 1) {
        throw new IllegalArgumentException("cosine schedule needs initial >= 0, target > 0, warmup >= 0,"
            + " decay steps >= 1, 0 <= alpha <= 1");
      }
    }

    @Override
    public double at(long step) {
      if (step < warmupSteps) {
        return initial + (target - initial) * ((double) step / warmupSteps);
      }
      double progress = Math.min(step - warmupSteps, decaySteps) / (double) decaySteps;
      double cosine = 0.5 * (1 + Math.cos(Math.PI * progress));
      return target * ((1 - alpha) * cosine + alpha);
    }
  }

  /**
   * ULMFiT's slanted triangular rate (Howard and Ruder, 2018): a short linear rise over
   * {@code cutFraction} of {@code totalSteps}, then a long linear fall, from {@code max / ratio}
   * up to {@code max} and back.
   */
  record SlantedTriangular(double max, long totalSteps, double cutFraction, double ratio)
      implements LearningRateSchedule {
    public SlantedTriangular {
      positive(max);
      if (totalSteps < 1 || !(cutFraction > 0 && cutFraction < 1) || !(ratio >= 1)) {
        throw new IllegalArgumentException("slanted triangular needs total steps >= 1, 0 < cut fraction < 1,"
            + " ratio >= 1");
      }
    }

    @Override
    public double at(long step) {
      double cut = Math.floor(totalSteps * cutFraction);
      double t = Math.min(step, totalSteps);
      double p = t < cut ? t / cut : 1 - (t - cut) / (cut * (1 / cutFraction - 1));
      return max * (1 + p * (ratio - 1)) / ratio;
    }
  }

  private static void positive(double rate) {
    if (!(rate > 0) || Double.isInfinite(rate)) {
      throw new IllegalArgumentException("a learning rate must be a positive number, got " + rate);
    }
  }
}
