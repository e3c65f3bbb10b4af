package org.finetune.train;

/**
 * A training step met a non-finite loss or gradient (NaN or infinity) and changed nothing: the
 * variables, the optimizer's slots and its step counter are as before the step.
 */
public final class NonFiniteStepException extends RuntimeException {
  private static final long serialVersionUID = 1L;
  private final long step;
  private final int stage;

  public NonFiniteStepException(long step, int stage) {
    super("non-finite loss or gradient at optimizer step " + step + " (stage " + (stage + 1) + "); the step was not"
        + " applied");
    this.step = step;
    this.stage = stage;
  }

  /** The optimizer step that was refused (0-based: the number of steps applied before it). */
  public long step() {
    return step;
  }

  public int stage() {
    return stage;
  }
}
