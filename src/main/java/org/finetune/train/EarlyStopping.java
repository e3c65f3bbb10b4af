package org.finetune.train;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Keras's {@code EarlyStopping}: stops when the monitored value (default {@code val_loss}) has
 * not improved by more than {@code minDelta} for {@code patience} epochs; with
 * {@code restoreBest}, puts back the weights (and optimizer state) of the best epoch at the end,
 * kept in the runtime's own checkpoint format in a scratch directory, not in the JVM.
 */
public final class EarlyStopping implements Fit.Callback {
  private final String monitor;
  private final int patience;
  private final double minDelta;
  private final boolean restoreBest;
  private double best = Double.NaN;
  private int bestEpoch = -1;
  private int wait;
  private Path scratch;

  public EarlyStopping(String monitor, int patience, double minDelta, boolean restoreBest) {
    if (patience < 0) {
      throw new IllegalArgumentException("patience must be >= 0, got " + patience);
    }
    this.monitor = monitor;
    this.patience = patience;
    this.minDelta = minDelta;
    this.restoreBest = restoreBest;
  }

  /** Whether higher is better for {@code monitor} (accuracy-like names), as Keras's "auto" mode decides. */
  public static boolean higherIsBetter(String monitor) {
    return monitor.contains("acc") || monitor.contains("auc") || monitor.contains("precision")
        || monitor.contains("recall") || monitor.contains("f1");
  }

  public static boolean improved(String monitor, double value, double best, double minDelta) {
    if (Double.isNaN(best)) {
      return !Double.isNaN(value);
    }
    return higherIsBetter(monitor) ? value > best + minDelta : value < best - minDelta;
  }

  @Override
  public void onEpochEnd(Fit.Control c, Fit.Epoch epoch) {
    Double value = epoch.logs().get(monitor);
    if (value == null) {
      throw new IllegalArgumentException("early stopping monitors '" + monitor + "', which the epoch does not report;"
          + " it has " + epoch.logs().keySet());
    }
    if (improved(monitor, value, best, minDelta)) {
      best = value;
      bestEpoch = epoch.epoch();
      wait = 0;
      if (restoreBest) {
        try {
          if (scratch == null) {
            scratch = Files.createTempDirectory("finetune-best-");
          }
        } catch (IOException e) {
          throw new UncheckedIOException(e);
        }
        c.trainer().saveState(scratch.resolve("best"));
      }
    } else if (++wait >= patience) {
      c.stop();
    }
  }

  @Override
  public void onTrainEnd(Fit.Control c, List<Fit.Epoch> history) {
    if (restoreBest && scratch != null && c.stopping()) {
      c.trainer().restoreState(scratch.resolve("best"));
    }
    if (scratch != null) {
      org.finetune.export.AtomicFiles.deleteTemporary(scratch);
    }
  }

  /** The best value seen and its epoch (-1 before the first). */
  public double best() {
    return best;
  }

  public int bestEpoch() {
    return bestEpoch;
  }
}
