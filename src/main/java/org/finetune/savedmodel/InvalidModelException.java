package org.finetune.savedmodel;

import java.nio.file.Path;

/**
 * A SavedModel directory (or a name asked of it) that cannot be used as given. The message is one
 * line for a person: the file or name at fault, what is wrong with it, and what to do. The CLI
 * reports it with exit code 2.
 *
 * <p>Messages quote names read from the model's files (nodes, functions, signatures, checkpoint
 * keys), which may hold any character; line breaks and other control characters in the message
 * are written as Java escapes (a newline as backslash and n, others as backslash, u and four hex
 * digits), so that it stays one line.
 */
public class InvalidModelException extends RuntimeException {
  private static final long serialVersionUID = 1L;
  private final transient Path path;

  public InvalidModelException(Path path, String message) {
    this(path, message, null);
  }

  public InvalidModelException(Path path, String message, Throwable cause) {
    super(oneLine(message), cause);
    this.path = path;
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
