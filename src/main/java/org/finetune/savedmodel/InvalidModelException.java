package org.finetune.savedmodel;

import java.nio.file.Path;
import org.finetune.hint.Hint;
import org.finetune.hint.Hinted;
import org.finetune.hint.Setting;

/**
 * A SavedModel directory (or a name asked of it) that cannot be used as given. The message is one
 * line for a person: the file or name at fault, what is wrong with it, and what to do. {@link #setting()}
 * says which setting a fix concerns, so that a front end can word the fix in its own terms.
 *
 * <p>Messages quote names read from the model's files (nodes, functions, signatures, checkpoint
 * keys), which may hold any character; line breaks and other control characters in the message
 * are written as Java escapes (a newline as backslash and n, others as backslash, u and four hex
 * digits), so that it stays one line.
 */
public class InvalidModelException extends RuntimeException implements Hinted {
  private static final long serialVersionUID = 1L;
  private final transient Path path;
  private final Hint hint;

  public InvalidModelException(Path path, String message) {
    this(path, message, null);
  }

  public InvalidModelException(Path path, String message, Throwable cause) {
    super(oneLine(message), cause);
    this.path = path;
    this.hint = new Hint(String.valueOf(getMessage()), Setting.NONE, "");
  }

  /**
   * @param path the file or directory at fault
   * @param problem what is wrong
   * @param setting the setting the fix concerns
   * @param fix what to do, in the library's words
   */
  public InvalidModelException(Path path, String problem, Setting setting, String fix) {
    super(oneLine(Hinted.message(problem, fix)));
    this.path = path;
    this.hint = new Hint(oneLine(problem), setting, oneLine(fix));
  }

  @Override
  public Hint hint() {
    return hint;
  }

  /** The file or directory at fault. */
  public Path path() {
    return path;
  }

  /** {@code text} with every character that could end or garble a terminal line escaped; tabs stay. */
  static String oneLine(String text) {
    if (text == null) {
      return null;
    }
    StringBuilder out = new StringBuilder(text.length());
    for (int i = 0; i < text.length(); i++) {
      char c = text.charAt(i);
      if (c == '\n') {
        out.append("\\n");
      } else if (c == '\r') {
        out.append("\\r");
      } else if (c != '\t' && (Character.isISOControl(c) || c == '\u2028' || c == '\u2029')) {
        out.append(String.format("\\u%04x", (int) c));
      } else {
        out.append(c);
      }
    }
    return out.toString();
  }
}
