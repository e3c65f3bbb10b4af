package org.finetune.data;

import java.nio.file.Path;

/**
 * Training or evaluation data that cannot be used as given: an unreadable image in strict mode,
 * for one. The message is one line for a person: the file at fault, what is wrong with it, and
 * what to do. The CLI reports it with exit code 2.
 */
public class InvalidDataException extends RuntimeException {
  private static final long serialVersionUID = 1L;
  private final transient Path path;

  public InvalidDataException(Path path, String message, Throwable cause) {
    super(message, cause);
    this.path = path;
  }

  /** The file at fault. */
  public Path path() {
    return path;
  }
}
