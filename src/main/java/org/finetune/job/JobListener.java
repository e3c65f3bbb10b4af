package org.finetune.job;

import java.io.PrintWriter;
import java.util.List;
import org.finetune.train.Fit;
import org.finetune.train.ProgressLogger;
import org.finetune.train.StepResult;

/**
 * Hears what a {@link FineTuneJob} does: lines that describe the run (the model and its family,
 * the data, the resolved plan, a resume, the feature cache), warnings (skipped files, variables
 * the loss cannot reach), and every step and epoch as a {@link Fit.Callback}. Every method is
 * optional.
 */
public interface JobListener extends Fit.Callback {
  /** A line describing the run, e.g. {@code Model: ...}, {@code Data: ...}, {@code Plan: {...}}. */
  default void message(String line) {}

  /** Something the caller should know that does not stop the run (without a "warning:" prefix). */
  default void warning(String line) {}

  /** A listener that hears nothing. */
  static JobListener silent() {
    return new JobListener() {};
  }

  /**
   * Prints as {@code finetune train} does: messages to {@code out}, Keras-style progress to
   * {@code out} (a bar redrawn in place when {@code interactive}, else one line per epoch), and
   * warnings to {@code err} prefixed "warning: ".
   */
  static JobListener printing(PrintWriter out, PrintWriter err, boolean interactive) {
    ProgressLogger progress = new ProgressLogger(out, interactive);
    return new JobListener() {
      @Override
      public void message(String line) {
        out.println(line);
        out.flush();
      }

      @Override
      public void warning(String line) {
        err.println("warning: " + line);
        err.flush();
      }

      @Override
      public void onTrainBegin(Fit.Control c) {
        progress.onTrainBegin(c);
      }

      @Override
      public void onEpochBegin(Fit.Control c) {
        progress.onEpochBegin(c);
      }

      @Override
      public void onBatchEnd(Fit.Control c, StepResult result, long size) {
        progress.onBatchEnd(c, result, size);
      }

      @Override
      public void onEpochEnd(Fit.Control c, Fit.Epoch epoch) {
        progress.onEpochEnd(c, epoch);
      }

      @Override
      public void onTrainEnd(Fit.Control c, List<Fit.Epoch> history) {
        progress.onTrainEnd(c, history);
      }
    };
  }
}
