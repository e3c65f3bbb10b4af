package org.finetune.export;

import java.nio.file.Path;

/**
 * What an export wrote.
 *
 * @param dir the SavedModel directory (with the serving version when one was asked for)
 * @param mode how the architecture relates to the base model's
 * @param variables variables saved
 * @param bytes size of the directory
 */
public record ExportResult(Path dir, Mode mode, int variables, long bytes) {
  /** Whether the export keeps the base model's graph or has a new one. */
  public enum Mode {
    /** The base model's own graph and signatures with the trained weights. */
    SAME_ARCHITECTURE,
    /** A new graph: the base model up to the cut, then the new head; one serving signature. */
    NEW_HEAD
  }
}
