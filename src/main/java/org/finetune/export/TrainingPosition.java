package org.finetune.export;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import java.util.ArrayList;
import java.util.List;
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
 * @param history the epochs completed so far (all before {@code epoch}), with their logs, across resumes
 */
public record TrainingPosition(int epoch, int batch, double rateScale, String monitor, OptionalDouble best,
    List<Fit.Epoch> history) {
  public TrainingPosition {
    Objects.requireNonNull(monitor, "monitor");
    Objects.requireNonNull(best, "best");
    history = List.copyOf(history);
    if (epoch < 0 || batch < 0) {
      throw new IllegalArgumentException("a training position needs epoch and batch >= 0, got " + epoch + ", " + batch);
    }
    for (Fit.Epoch e : history) {
      if (e.epoch() >= epoch) {
        throw new IllegalArgumentException("a training position at epoch " + epoch + " records epoch " + e.epoch()
            + " as completed");
      }
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
    JsonArray epochs = new JsonArray();
    history.forEach(e -> epochs.add(e.toJson()));
    extra.add("history", epochs);
    return extra;
  }

  /** The position a checkpoint records (the start, scale 1, when it records none). */
  public static TrainingPosition of(Checkpoint.Info info) {
    JsonObject extra = info.extra();
    return new TrainingPosition(extra.has("epoch") ? extra.get("epoch").getAsInt() : 0,
        extra.has("batch") ? extra.get("batch").getAsInt() : 0,
        extra.has("rate_scale") ? extra.get("rate_scale").getAsDouble() : 1.0,
        extra.has("monitor") ? extra.get("monitor").getAsString() : "",
        extra.has("best") ? OptionalDouble.of(extra.get("best").getAsDouble()) : OptionalDouble.empty(),
        history(extra));
  }

  /** The epochs a checkpoint's position records (none from checkpoints written before it kept them). */
  private static List<Fit.Epoch> history(JsonObject extra) {
    List<Fit.Epoch> out = new ArrayList<>();
    if (extra.has("history") && extra.get("history").isJsonArray()) {
      extra.getAsJsonArray("history").forEach(e -> out.add(Fit.Epoch.fromJson(e.getAsJsonObject())));
    }
    return out;
  }
}
