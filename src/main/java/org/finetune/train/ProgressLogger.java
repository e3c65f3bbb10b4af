package org.finetune.train;

import java.io.PrintWriter;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Keras-style progress: {@code Epoch 2/5}, then a bar with the batch counter, ETA, loss and
 * metrics redrawn in place on a terminal, and one summary line per epoch with the validation
 * figures and the learning rate. When the output is not a terminal, only the summary lines.
 */
public final class ProgressLogger implements Fit.Callback {
  private final PrintWriter out;
  private final boolean interactive;
  private long epochStart;
  private Fit.Mean mean;

  public ProgressLogger(PrintWriter out, boolean interactive) {
    this.out = out;
    this.interactive = interactive;
  }

  @Override
  public void onEpochBegin(Fit.Control c) {
    out.printf(Locale.ROOT, "Epoch %d/%d%s%n", c.epoch() + 1, c.options().epochs(),
        c.trainer().stageCount() > 1 ? "  (stage " + (c.trainer().stage() + 1) + "/" + c.trainer().stageCount() + ", "
            + c.trainer().trainedVariables(c.trainer().stage()).size() + " variables training)" : "");
    out.flush();
    epochStart = System.nanoTime();
    mean = new Fit.Mean();
  }

  @Override
  public void onBatchEnd(Fit.Control c, StepResult result, long size) {
    mean.add(result, size);
    if (!interactive) {
      return;
    }
    int total = c.batchesPerEpoch();
    int done = c.batch();
    double elapsed = (System.nanoTime() - epochStart) / 1e9;
    double eta = done == 0 ? 0 : elapsed / done * (total - done);
    int width = 30;
    int filled = total == 0 ? width : (int) ((long) width * done / total);
    StringBuilder bar = new StringBuilder();
    for (int i = 0; i < width; i++) {
      bar.append(i < filled ? '=' : i == filled ? '>' : '.');
    }
    out.printf(Locale.ROOT, "\r%d/%d [%s] - ETA: %.0fs%s", done, total, bar, eta, format(mean.values("")));
    out.flush();
  }

  @Override
  public void onEpochEnd(Fit.Control c, Fit.Epoch epoch) {
    double seconds = (System.nanoTime() - epochStart) / 1e9;
    out.printf(Locale.ROOT, "%s%d/%d - %.1fs%s%n", interactive ? "\r" : "", c.batch(), c.batchesPerEpoch(), seconds,
        format(epoch.logs()));
    out.flush();
  }

  @Override
  public void onTrainEnd(Fit.Control c, List<Fit.Epoch> history) {
    out.flush();
  }

  static String format(Map<String, Double> logs) {
    StringBuilder b = new StringBuilder();
    logs.forEach((k, v) -> b.append(String.format(Locale.ROOT, k.equals("lr") ? " - %s: %.3g" : " - %s: %.4f", k, v)));
    return b.toString();
  }
}
