package org.finetune.hint;

import java.util.Objects;

/**
 * A setting that cannot be used as given: bad input, not a failure. The message is one line for a
 * person, the problem and the fix in the library's words.
 */
public class BadSettingException extends IllegalArgumentException implements Hinted {
  private static final long serialVersionUID = 1L;
  private final String problem;
  private final Setting setting;
  private final String fix;

  /**
   * @param problem what is wrong
   * @param setting the setting the fix concerns
   * @param fix what to do, in the library's words ("" when the problem says it)
   */
  public BadSettingException(String problem, Setting setting, String fix) {
    super(Hinted.message(problem, fix));
    this.problem = Objects.requireNonNull(problem, "problem");
    this.setting = Objects.requireNonNull(setting, "setting");
    this.fix = Objects.requireNonNull(fix, "fix");
  }

  @Override
  public String problem() {
    return problem;
  }

  @Override
  public Setting setting() {
    return setting;
  }

  @Override
  public String fix() {
    return fix;
  }
}
