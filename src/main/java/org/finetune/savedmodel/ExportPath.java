package org.finetune.savedmodel;

/** How a SavedModel was written: the export paths our users really have. */
public enum ExportPath {
  /** Keras 3 {@code model.export()} (an ExportArchive: {@code serve} endpoint, variables saved twice). */
  KERAS3_EXPORT("keras3_export", "Keras 3 model.export()"),
  /** {@code tf.saved_model.save} of a Keras 3 model. */
  TF_SAVED_MODEL_KERAS3("tf_saved_model", "tf.saved_model.save of a Keras 3 model"),
  /** tf_keras (Keras 2) {@code model.save(path, save_format="tf")}, with keras_metadata.pb. */
  TF_KERAS("tf_keras", "tf_keras model.save(save_format=\"tf\")"),
  /** {@code tf.saved_model.save} of a plain {@code tf.Module}. */
  TF_SAVED_MODEL("tf_saved_model", "tf.saved_model.save"),
  /** A TF1-style SavedModel (SavedModelBuilder): no object graph, no functions. */
  TF1("tf1", "TF1 SavedModelBuilder");

  private final String id;
  private final String description;

  ExportPath(String id, String description) {
    this.id = id;
    this.description = description;
  }

  /** The short name used in JSON and in our fixtures' folder names. */
  public String id() {
    return id;
  }

  public String description() {
    return description;
  }
}
