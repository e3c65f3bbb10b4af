package org.finetune.data;

import java.nio.file.Path;
import org.finetune.hint.Hint;
import org.finetune.hint.Hinted;
import org.finetune.hint.Setting;

/**
 * Training or evaluation data that cannot be used as given: an unreadable image in strict mode,
 * for one. The message is one line for a person: the file at fault, what is wrong with it, and
 * what to do. {@link #setting()} says which setting a fix
 * concerns, so that a front end can word the fix in its own terms.
 */
public class InvalidDataException extends RuntimeException implements Hinted {
  private static final long serialVersionUID = 1L;
  private final transient Path path;
  private final Hint hint;

  public InvalidDataException(Path path, String message, Throwable cause) {
    this(path, message, Setting.NONE, "", cause);
  }

  /**
   * @param path the file at fault
   * @param problem what is wrong
   * @param setting the setting the fix concerns
   * @param fix what to do, in the library's words
   * @param cause what failed underneath, or null
   */
  public InvalidDataException(Path path, String problem, Setting setting, String fix, Throwable cause) {
    super(Hinted.message(problem, fix), cause);
    this.path = path;
    this.hint = new Hint(problem, setting, fix);
  }

  @Override
  public Hint hint() {
    return hint;
  }

  /** The file at fault. */
  public Path path() {
    return path;
  }
}
