package org.finetune.train;

/**
 * An optimizer and its hyperparameters, with Keras 3's defaults and update rules (applied with
 * TensorFlow's resource ops, so Keras's resource variables can be trained).
 */
public sealed interface OptimizerSpec {
  double learningRate();

  /** Keras {@code SGD}: plain, with momentum, or Nesterov momentum. */
  record Sgd(double learningRate, double momentum, boolean nesterov) implements OptimizerSpec {
    public Sgd {
      positive("learning rate", learningRate);
      if (momentum < 0 || momentum >= 1) {
        throw new IllegalArgumentException("momentum must be in [0, 1), got " + momentum);
      }
    }

    /** Keras's defaults: learning rate 0.01, no momentum. */
    public static Sgd defaults() {
      return new Sgd(0.01, 0.0, false);
    }
  }

  /** Keras {@code Adam}. */
  record Adam(double learningRate, double beta1, double beta2, double epsilon) implements OptimizerSpec {
    public Adam {
      positive("learning rate", learningRate);
      unit("beta_1", beta1);
      unit("beta_2", beta2);
      positive("epsilon", epsilon);
    }

    /** Keras's defaults: 0.001, 0.9, 0.999, 1e-7. */
    public static Adam defaults() {
      return new Adam(0.001, 0.9, 0.999, 1e-7);
    }
  }

  /**
   * Keras {@code AdamW}: Adam with decoupled weight decay ({@code w -= w * decay * lr} before the
   * Adam step). With {@code excludeBiasesAndNorms}, rank-1 variables (biases, normalisation
   * scales and offsets) are not decayed.
   */
  record AdamW(double learningRate, double beta1, double beta2, double epsilon, double weightDecay,
      boolean excludeBiasesAndNorms) implements OptimizerSpec {
    public AdamW {
      positive("learning rate", learningRate);
      unit("beta_1", beta1);
      unit("beta_2", beta2);
      positive("epsilon", epsilon);
      if (weightDecay < 0) {
        throw new IllegalArgumentException("weight decay must be >= 0, got " + weightDecay);
      }
    }

    /** Keras's defaults: 0.001, 0.9, 0.999, 1e-7, weight decay 0.004; biases and norms excluded. */
    public static AdamW defaults() {
      return new AdamW(0.001, 0.9, 0.999, 1e-7, 0.004, true);
    }
  }

  private static void positive(String what, double v) {
    if (!(v > 0) || Double.isInfinite(v)) {
      throw new IllegalArgumentException(what + " must be a positive number, got " + v);
    }
  }

  private static void unit(String what, double v) {
    if (!(v >= 0 && v < 1)) {
      throw new IllegalArgumentException(what + " must be in [0, 1), got " + v);
    }
  }
}
