package org.finetune.savedmodel;

import java.nio.file.Path;

/**
 * A SavedModel directory (or a name asked of it) that cannot be used as given. The message is one
 * line for a person: the file or name at fault, what is wrong with it, and what to do. The CLI
 * reports it with exit code 2.
 */
public class InvalidModelException extends RuntimeException {
  private static final long serialVersionUID = 1L;
  private final transient Path path;

  public InvalidModelException(Path path, String message) {
    this(path, message, null);
  }

  public InvalidModelException(Path path, String message, Throwable cause) {
    super(message, cause);
    this.path = path;
  }

  /** The file or directory at fault. */
  public Path path() {
    return path;
  }
}
