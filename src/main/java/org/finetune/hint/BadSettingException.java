package org.finetune.hint;

/**
 * A setting that cannot be used as given: bad input, not a failure. The message is one line for a
 * person, the problem and the fix in the library's words.
 */
public class BadSettingException extends IllegalArgumentException implements Hinted {
  private static final long serialVersionUID = 1L;
  private final Hint hint;

  /**
   * @param problem what is wrong
   * @param setting the setting the fix concerns
   * @param fix what to do, in the library's words ("" when the problem says it)
   */
  public BadSettingException(String problem, Setting setting, String fix) {
    this(new Hint(problem, setting, fix));
  }

  private BadSettingException(Hint hint) {
    super(hint.message());
    this.hint = hint;
  }

  @Override
  public Hint hint() {
    return hint;
  }
}
