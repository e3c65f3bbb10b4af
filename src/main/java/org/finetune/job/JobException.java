package org.finetune.job;

import java.util.Objects;

/**
 * A fine-tuning job that cannot run as set up: bad input, not a failure. The message is one line
 * for a person: what is wrong and, in the library's words, how to fix it. {@link #setting()}
 * names the job setting the fix concerns, so that a front end (the command line) can name its own
 * flag for it instead.
 */
public final class JobException extends IllegalArgumentException {
  private static final long serialVersionUID = 1L;

  /** The job setting a fix concerns. */
  public enum Setting {
    /** Nothing in particular: the problem says all. */
    NONE,
    /** The training data. */
    DATA,
    /** The model, or the signature trained. */
    MODEL,
    /** A new classification head ({@link FineTuneJob.Builder#newHead()}). */
    HEAD,
    /** The image size of a model that takes any size. */
    IMAGE_SIZE,
    /** The export directory. */
    EXPORT,
    /** The checkpoint resumed from. */
    RESUME,
    /** Layer groups for gradual unfreezing. */
    GROUPS,
    /** Tokens per block of text. */
    SEQUENCE_LENGTH,
    /** Validation data or split. */
    VALIDATION,
    /** Augmentation. */
    AUGMENTATION,
    /** The training plan. */
    PLAN
  }

  private final String problem;
  private final Setting setting;
  private final String fix;

  /**
   * @param problem what is wrong
   * @param setting the setting the fix concerns
   * @param fix what to do, in the library's words ("" when the problem says it)
   */
  public JobException(String problem, Setting setting, String fix) {
    super(fix.isEmpty() ? problem : problem + "; " + fix);
    this.problem = Objects.requireNonNull(problem, "problem");
    this.setting = Objects.requireNonNull(setting, "setting");
    this.fix = fix;
  }

  /** Bad input whose message says all (e.g. a data folder's own error). */
  static JobException of(Setting setting, IllegalArgumentException cause) {
    JobException e = new JobException(String.valueOf(cause.getMessage()), setting, "");
    e.initCause(cause);
    return e;
  }

  /** What is wrong, without the fix. */
  public String problem() {
    return problem;
  }

  public Setting setting() {
    return setting;
  }

  /** The fix in the library's words; "" when the problem says it. */
  public String fix() {
    return fix;
  }
}
