package org.finetune.fuzz;

/** What the fuzz targets require of a bad-input message: the CLI prints it as one line on stderr. */
final class Messages {
  private Messages() {}

  /** Fails unless {@code message} is non-blank and holds no character a terminal or a log reader breaks on. */
  static void assertOneLine(String message, Throwable cause) {
    if (message == null || message.isBlank()) {
      throw new AssertionError("a bad-input message must not be empty", cause);
    }
    for (int i = 0; i < message.length(); i++) {
      char c = message.charAt(i);
      if (c == '\n' || c == '\r' || c == '\u000b' || c == '\u000c' || c == '\u0085' || c == '\u2028'
          || c == '\u2029') {
        throw new AssertionError(String.format("a bad-input message must be one line, but it has U+%04X at %d: %s",
            (int) c, i, message), cause);
      }
    }
  }
}
