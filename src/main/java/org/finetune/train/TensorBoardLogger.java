package org.finetune.train;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.tensorflow.Graph;
import org.tensorflow.Session;
import org.tensorflow.op.Op;
import org.tensorflow.op.Ops;
import org.tensorflow.op.core.Placeholder;
import org.tensorflow.op.summary.SummaryWriter;
import org.tensorflow.types.TFloat32;
import org.tensorflow.types.TInt64;
import org.tensorflow.types.TString;

/**
 * TensorBoard event files, written by TensorFlow's own summary ops (in a small graph of their
 * own, away from the model's), laid out as Keras's {@code TensorBoard} callback lays them out:
 * {@code <dir>/train} with {@code batch_loss} and {@code batch_<metric>} per step and
 * {@code epoch_loss}, {@code epoch_<metric>}, {@code epoch_learning_rate} per epoch, and
 * {@code <dir>/validation} with the validation figures per epoch. Close it (the training loop's
 * end does) to flush.
 */
public final class TensorBoardLogger implements Fit.Callback, AutoCloseable {
  private final Graph graph = new Graph();
  private final Session session = new Session(graph);
  private final Writer train;
  private final Writer validation;
  private boolean closed;

  /** One event file's writer ops. */
  private record Writer(String tag, String step, String value, String write, String flush, String close) {}

  public TensorBoardLogger(Path dir) {
    Ops tf = Ops.create(graph);
    this.train = writer(tf.withSubScope("train"), dir.resolve("train"));
    this.validation = writer(tf.withSubScope("validation"), dir.resolve("validation"));
  }

  private Writer writer(Ops tf, Path logdir) {
    SummaryWriter handle = tf.summary.summaryWriter(SummaryWriter.sharedName(
        "finetune_" + Integer.toHexString(System.identityHashCode(this)) + "_" + logdir.getFileName()));
    Op create = tf.summary.createSummaryFileWriter(handle, tf.constant(logdir.toString()), tf.constant(10),
        tf.constant(2000), tf.constant(".v2"));
    session.runner().addTarget(create).run();
    Placeholder<TString> tag = tf.placeholder(TString.class);
    Placeholder<TInt64> step = tf.placeholder(TInt64.class);
    Placeholder<TFloat32> value = tf.placeholder(TFloat32.class);
    Op write = tf.summary.writeScalarSummary(handle, step, tag, value);
    Op flush = tf.summary.flushSummaryWriter(handle);
    Op close = tf.summary.closeSummaryWriter(handle);
    return new Writer(tag.op().name(), step.op().name(), value.op().name(), write.op().name(), flush.op().name(),
        close.op().name());
  }

  private void scalar(Writer w, String tag, long step, double value) {
    try (TString t = TString.scalarOf(tag); TInt64 s = TInt64.scalarOf(step); TFloat32 v = TFloat32.scalarOf((float) value)) {
      session.runner().feed(w.tag(), t).feed(w.step(), s).feed(w.value(), v).addTarget(w.write()).run();
    }
  }

  @Override
  public void onBatchEnd(Fit.Control c, StepResult result, long size) {
    scalar(train, "batch_loss", result.step(), result.loss());
    result.metrics().forEach((k, v) -> scalar(train, "batch_" + k, result.step(), v));
  }

  @Override
  public void onEpochEnd(Fit.Control c, Fit.Epoch epoch) {
    for (Map.Entry<String, Double> e : epoch.logs().entrySet()) {
      String k = e.getKey();
      if (k.equals("lr")) {
        scalar(train, "epoch_learning_rate", epoch.epoch(), e.getValue());
      } else if (k.startsWith("val_")) {
        scalar(validation, "epoch_" + k.substring(4), epoch.epoch(), e.getValue());
      } else {
        scalar(train, "epoch_" + k, epoch.epoch(), e.getValue());
      }
    }
    session.runner().addTarget(train.flush()).addTarget(validation.flush()).run();
  }

  @Override
  public void onTrainEnd(Fit.Control c, List<Fit.Epoch> history) {
    close();
  }

  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    session.runner().addTarget(train.close()).addTarget(validation.close()).run();
    session.close();
    graph.close();
  }
}
