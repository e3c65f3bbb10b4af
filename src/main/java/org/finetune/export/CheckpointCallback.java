package org.finetune.export;

import com.google.gson.JsonObject;
import java.nio.file.Path;
import org.finetune.train.Fit;

/**
 * Writes training checkpoints while {@link Fit} runs: {@code <dir>/last} after every epoch (and
 * every {@code everyBatches} batches, when positive), {@code <dir>/best} when the monitored value
 * improves. Each records where to resume ({@code epoch}, {@code batch}), the learning-rate scale
 * and the best value so far, so that {@code --resume} continues exactly.
 */
public final class CheckpointCallback implements Fit.Callback {
  public static final String LAST = "last";
  public static final String BEST = "best";

  private final Path dir;
  private final String monitor;
  private final int everyBatches;
  private double best = Double.NaN;

  public CheckpointCallback(Path dir, String monitor, int everyBatches) {
    this.dir = dir;
    this.monitor = monitor;
    this.everyBatches = everyBatches;
  }

  @Override
  public void onBatchEnd(Fit.Control c, org.finetune.train.StepResult result, long size) {
    if (everyBatches > 0 && c.batch() % everyBatches == 0 && c.batch() < c.batchesPerEpoch()) {
      Checkpoint.save(c.trainer(), dir.resolve(LAST), position(c, c.epoch(), c.batch()));
    }
  }

  @Override
  public void onEpochEnd(Fit.Control c, Fit.Epoch epoch) {
    Double value = epoch.logs().get(monitor);
    boolean better = value != null && org.finetune.train.EarlyStopping.improved(monitor, value, best, 0);
    if (better) {
      best = value;
    }
    JsonObject next = position(c, epoch.epoch() + 1, 0);
    Checkpoint.save(c.trainer(), dir.resolve(LAST), next);
    if (better) {
      next.addProperty("epochs", epoch.epoch() + 1);
      Checkpoint.save(c.trainer(), dir.resolve(BEST), next);
    }
  }

  private JsonObject position(Fit.Control c, int epoch, int batch) {
    JsonObject extra = new JsonObject();
    extra.addProperty("epoch", epoch);
    extra.addProperty("batch", batch);
    extra.addProperty("epochs", epoch);
    extra.addProperty("rate_scale", c.trainer().rateScale());
    extra.addProperty("monitor", monitor);
    if (!Double.isNaN(best)) {
      extra.addProperty("best", best);
    }
    return extra;
  }
}
