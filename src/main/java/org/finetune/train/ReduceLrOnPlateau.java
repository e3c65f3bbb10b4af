package org.finetune.train;

/**
 * Keras's {@code ReduceLROnPlateau}: when the monitored value has not improved for
 * {@code patience} epochs, multiplies the learning rate by {@code factor} (not below
 * {@code minRate}), then waits {@code patience} epochs again.
 */
public final class ReduceLrOnPlateau implements Fit.Callback {
  private final String monitor;
  private final double factor;
  private final int patience;
  private final double minRate;
  private double best = Double.NaN;
  private int wait;

  public ReduceLrOnPlateau(String monitor, double factor, int patience, double minRate) {
    if (!(factor > 0 && factor < 1)) {
      throw new IllegalArgumentException("the reduction factor must be in (0, 1), got " + factor);
    }
    this.monitor = monitor;
    this.factor = factor;
    this.patience = patience;
    this.minRate = minRate;
  }

  @Override
  public void onEpochEnd(Fit.Control c, Fit.Epoch epoch) {
    Double value = epoch.logs().get(monitor);
    if (value == null) {
      return;
    }
    if (EarlyStopping.improved(monitor, value, best, 0)) {
      best = value;
      wait = 0;
    } else if (++wait >= patience) {
      double rate = epoch.logs().getOrDefault("lr", 0.0);
      if (rate > minRate) {
        double scale = c.trainer().rateScale() * Math.max(factor, minRate / rate);
        c.trainer().setRateScale(scale);
      }
      wait = 0;
    }
  }
}
