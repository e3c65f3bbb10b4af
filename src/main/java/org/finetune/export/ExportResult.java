package org.finetune.export;

import java.nio.file.Path;

/**
 * What an export wrote.
 *
 * @param dir the SavedModel directory (with the serving version when one was asked for)
 * @param mode how the architecture relates to the base model's
 * @param variables variables saved
 * @param bytes size of the directory
 * @param python which Python calls load it, in one line for people (a new head on a tf_keras
 *     model: {@code tf_keras.models.load_model} returns a plain object that cannot be called,
 *     since the head has no Keras layer config to rebuild, so the line names the loaders that work)
 */
public record ExportResult(Path dir, Mode mode, int variables, long bytes, String python) {
  /** A result whose Python line is the generic one. */
  public ExportResult(Path dir, Mode mode, int variables, long bytes) {
    this(dir, mode, variables, bytes, python(dir, false, false, false));
  }

  /**
   * The one line that says which Python calls load an export in {@code dir}.
   *
   * @param tfKeras whether the base was saved by tf_keras (it has {@code keras_metadata.pb})
   * @param newHead whether the export has a new head
   * @param severalInputs whether its signature takes several inputs (TFSMLayer then goes through
   *     {@code serve}, which takes them as one structure)
   */
  static String python(Path dir, boolean tfKeras, boolean newHead, boolean severalInputs) {
    String d = "\"" + dir + "\"";
    String common = "tf.saved_model.load(" + d + ") or keras.layers.TFSMLayer(" + d + ", call_endpoint=\""
        + (severalInputs ? "serve" : "serving_default") + "\")";
    if (!tfKeras) {
      return common;
    }
    return newHead ? common + "; tf_keras.models.load_model gives an object that cannot be called or predict (a new"
        + " head has no Keras layer config to rebuild)"
        : "tf_keras.models.load_model(" + d + "), " + common;
  }
  /** Whether the export keeps the base model's graph or has a new one. */
  public enum Mode {
    /** The base model's own graph and signatures with the trained weights. */
    SAME_ARCHITECTURE,
    /** A new graph: the base model up to the cut, then the new head; one serving signature. */
    NEW_HEAD
  }
}
