package org.finetune.export;

import com.google.gson.JsonObject;
import java.util.Objects;
import java.util.OptionalDouble;
import org.finetune.train.Fit;

/**
 * Where a run stood when a checkpoint was written, as {@link CheckpointCallback} saves it and
 * reads it back on resume (the checkpoint's {@code state.json}, under {@code "extra"}).
 *
 * @param epoch the epoch to continue with (0-based)
 * @param batch the batch of that epoch to continue with
 * @param rateScale the learning-rate scale reduce-on-plateau had set
 * @param monitor the value judged for the best checkpoint
 * @param best the best value of {@code monitor} so far (empty before the first epoch ended)
 */
public record TrainingPosition(int epoch, int batch, double rateScale, String monitor, OptionalDouble best) {
  public TrainingPosition {
    Objects.requireNonNull(monitor, "monitor");
    Objects.requireNonNull(best, "best");
    if (epoch < 0 || batch < 0) {
      throw new IllegalArgumentException("a training position needs epoch and batch >= 0, got " + epoch + ", " + batch);
    }
  }

  /** Where the loop starts again. */
  public Fit.Start start() {
    return new Fit.Start(epoch, batch);
  }

  JsonObject toJson() {
    JsonObject extra = new JsonObject();
    extra.addProperty("epoch", epoch);
    extra.addProperty("batch", batch);
    extra.addProperty("epochs", epoch);
    extra.addProperty("rate_scale", rateScale);
    extra.addProperty("monitor", monitor);
    best.ifPresent(b -> extra.addProperty("best", b));
    return extra;
  }

  /** The position a checkpoint records (the start, scale 1, when it records none). */
  public static TrainingPosition of(Checkpoint.Info info) {
    JsonObject extra = info.extra();
    return new TrainingPosition(extra.has("epoch") ? extra.get("epoch").getAsInt() : 0,
        extra.has("batch") ? extra.get("batch").getAsInt() : 0,
        extra.has("rate_scale") ? extra.get("rate_scale").getAsDouble() : 1.0,
        extra.has("monitor") ? extra.get("monitor").getAsString() : "",
        extra.has("best") ? OptionalDouble.of(extra.get("best").getAsDouble()) : OptionalDouble.empty());
  }
}
