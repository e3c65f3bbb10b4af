package org.finetune.cli;

/** The exit codes every command uses. */
public final class ExitCode {
  /** Done. */
  public static final int OK = 0;
  /** Failed while working. */
  public static final int FAILED = 1;
  /** The input (a flag, a file, a model) is unusable; nothing was done. */
  public static final int BAD_INPUT = 2;
  /** Partly done, e.g. some layers cannot be trained. */
  public static final int PARTLY = 3;

  private ExitCode() {}
}
