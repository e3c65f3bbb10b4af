package org.finetune.cli;

/** A command line that cannot be run as given (exit code 2); the message says how to fix it. */
final class UsageException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  UsageException(String message) {
    super(message);
  }
}
