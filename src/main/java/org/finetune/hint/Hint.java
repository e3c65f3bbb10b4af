package org.finetune.hint;

import java.util.Objects;

/**
 * What is wrong and how to fix it, in parts.
 *
 * @param problem what is wrong, without the fix
 * @param setting the setting the fix concerns; {@link Setting#NONE} when the problem says all
 * @param fix the fix in the library's words; "" when the problem says it
 */
public record Hint(String problem, Setting setting, String fix) {
  public Hint {
    Objects.requireNonNull(problem, "problem");
    Objects.requireNonNull(setting, "setting");
    Objects.requireNonNull(fix, "fix");
  }

  /** The problem and the fix as one message. */
  public String message() {
    return fix.isEmpty() ? problem : problem + "; " + fix;
  }
}
