package org.finetune.hint;

/**
 * An error that says what is wrong and how to fix it, in parts ({@link #hint()}). Its message is
 * the problem and the fix together; a front end may word the fix in its own terms instead (the
 * command line names its flag for the setting).
 */
public interface Hinted {
  /** The problem, the setting the fix concerns and the fix in the library's words. */
  Hint hint();

  /** What is wrong, without the fix. */
  default String problem() {
    return hint().problem();
  }

  /** The setting the fix concerns; {@link Setting#NONE} when the problem says all. */
  default Setting setting() {
    return hint().setting();
  }

  /** The fix in the library's words; "" when the problem says it. */
  default String fix() {
    return hint().fix();
  }

  /** The problem and the library's fix as one message. */
  static String message(String problem, String fix) {
    return new Hint(problem, Setting.NONE, fix).message();
  }
}
