package org.finetune.hint;

/**
 * An error that says what is wrong and how to fix it, in parts: the {@link #problem()}, the
 * {@link #setting()} the fix concerns and the {@link #fix()} in the library's words. Its message is
 * the problem and the fix together; a front end may word the fix in its own terms instead (the
 * command line names its flag for the setting).
 */
public interface Hinted {
  /** What is wrong, without the fix. */
  String problem();

  /** The setting the fix concerns; {@link Setting#NONE} when the problem says all. */
  Setting setting();

  /** The fix in the library's words; "" when the problem says it. */
  String fix();

  /** The problem and the library's fix as one message. */
  static String message(String problem, String fix) {
    return fix.isEmpty() ? problem : problem + "; " + fix;
  }
}
