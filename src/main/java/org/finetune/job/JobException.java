package org.finetune.job;

import org.finetune.hint.BadSettingException;
import org.finetune.hint.Hinted;
import org.finetune.hint.Setting;

/**
 * A fine-tuning job that cannot run as set up: bad input, not a failure. The message is one line
 * for a person: what is wrong and, in the library's words, how to fix it. {@link #setting()}
 * names the job setting the fix concerns, so that a front end (the command line) can name its own
 * flag for it instead.
 */
public final class JobException extends BadSettingException {
  private static final long serialVersionUID = 1L;

  /**
   * @param problem what is wrong
   * @param setting the setting the fix concerns
   * @param fix what to do, in the library's words ("" when the problem says it)
   */
  public JobException(String problem, Setting setting, String fix) {
    super(problem, setting, fix);
  }

  /** Bad input from a library call, keeping its hint when it has one (else its message says all). */
  static JobException of(Setting setting, IllegalArgumentException cause) {
    JobException e = cause instanceof Hinted h
        ? new JobException(h.problem(), h.setting() == Setting.NONE ? setting : h.setting(), h.fix())
        : new JobException(String.valueOf(cause.getMessage()), setting, "");
    e.initCause(cause);
    return e;
  }
}
