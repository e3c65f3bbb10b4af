package org.finetune.export;

import com.google.gson.JsonObject;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.OptionalDouble;
import org.finetune.train.EarlyStopping;
import org.finetune.train.Fit;

/**
 * Writes training checkpoints while {@link Fit} runs, and owns their {@link TrainingPosition}, as
 * Keras's {@code BackupAndRestore} owns its backup: {@code <dir>/last} after every epoch (and
 * every {@code everyBatches} batches, when positive), {@code <dir>/best} when the monitored value
 * improves on the best so far. Each records where to resume, the learning-rate scale and the best
 * value; a callback that continues a run ({@link #resuming}) starts from the checkpoint's best,
 * so that a worse first epoch after a resume leaves {@code best} as it was.
 */
public final class CheckpointCallback implements Fit.Callback {
  public static final String LAST = "last";
  public static final String BEST = "best";

  private final Path dir;
  private final String monitor;
  private final int everyBatches;
  private double best = Double.NaN;
  private final List<Fit.Epoch> history = new ArrayList<>();

  public CheckpointCallback(Path dir, String monitor, int everyBatches) {
    this.dir = dir;
    this.monitor = monitor;
    this.everyBatches = everyBatches;
  }

  /**
   * Continues from {@code position} (a checkpoint's): its best value is the one to beat when it
   * judged the same monitored value, and its history is continued.
   */
  public CheckpointCallback resuming(Optional<TrainingPosition> position) {
    position.filter(p -> p.monitor().equals(monitor) && p.best().isPresent())
        .ifPresent(p -> best = p.best().getAsDouble());
    position.ifPresent(p -> history.addAll(p.history()));
    return this;
  }

  /** Restores a checkpoint's position into the trainer (its learning-rate scale); where the loop continues. */
  public static Fit.Start restore(org.finetune.train.Trainer trainer, Checkpoint.Info info) {
    Checkpoint.restore(trainer, info);
    TrainingPosition p = TrainingPosition.of(info);
    trainer.setRateScale(p.rateScale());
    return p.start();
  }

  @Override
  public void onBatchEnd(Fit.Control c, org.finetune.train.StepResult result, long size) {
    if (everyBatches > 0 && c.batch() % everyBatches == 0 && c.batch() < c.batchesPerEpoch()) {
      Checkpoint.save(c.trainer(), dir.resolve(LAST), position(c, c.epoch(), c.batch()).toJson());
    }
  }

  @Override
  public void onEpochEnd(Fit.Control c, Fit.Epoch epoch) {
    Double value = epoch.logs().get(monitor);
    boolean better = value != null && EarlyStopping.improved(monitor, value, best, 0);
    if (better) {
      best = value;
    }
    history.add(epoch);
    JsonObject next = position(c, epoch.epoch() + 1, 0).toJson();
    Checkpoint.save(c.trainer(), dir.resolve(LAST), next);
    if (better) {
      Checkpoint.save(c.trainer(), dir.resolve(BEST), next);
    }
  }

  private TrainingPosition position(Fit.Control c, int epoch, int batch) {
    return new TrainingPosition(epoch, batch, c.trainer().rateScale(), monitor,
        Double.isNaN(best) ? OptionalDouble.empty() : OptionalDouble.of(best), history);
  }
}
