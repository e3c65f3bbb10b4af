/**
 * finetune: fine-tunes Keras SavedModels on the JVM through the TensorFlow runtime and exports them
 * back. A service starts at {@link org.finetune.job.FineTuneJob} and
 * {@link org.finetune.model.KerasSavedModel}; the flattener and the gradients we add
 * ({@code org.finetune.graph}) and the command line ({@code org.finetune.cli}, run as
 * {@code org.finetune.cli.Main}) are not exported.
 */
module org.finetune {
  requires transitive tensorflow;
  requires transitive tensorflow.nativelib;
  requires transitive com.google.gson;
  requires com.google.common;
  requires com.google.protobuf;
  requires java.desktop;
  requires jtokkit;
  requires org.apache.commons.cli;
  requires org.apache.commons.imaging;
  requires org.knowm.xchart;

  exports org.finetune.batch;
  exports org.finetune.data;
  exports org.finetune.export;
  exports org.finetune.hint;
  exports org.finetune.job;
  exports org.finetune.model;
  exports org.finetune.savedmodel;
  exports org.finetune.serving;
  exports org.finetune.text;
  exports org.finetune.train;
}
