package org.finetune.job;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonNull;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalInt;
import org.finetune.export.AtomicFiles;
import org.finetune.export.ExportResult;
import org.finetune.train.Fit;
import org.finetune.train.PlanJson;
import org.finetune.train.TrainingPlan;

/**
 * What a {@link FineTuneJob} did, and its JSON form ({@link #write}, {@link #read}): the record a
 * process that ran a job leaves for whoever started it.
 *
 * @param history the epochs this run trained (not those before a resume), with their logs
 * @param earlier the epochs trained before a resume, as the resumed checkpoint recorded them
 * @param startEpoch the epoch it started at (0, or where a resumed checkpoint stood)
 * @param epochs the epochs the job asked for in all
 * @param monitor the value judged for the best epoch ({@code val_loss}, or {@code loss} without validation)
 * @param bestEpoch the best epoch of this run by {@code monitor} (0-based; empty when none ran)
 * @param best its value
 * @param stoppedEarly whether early stopping ended the run (the best epoch's weights were then restored)
 * @param plan the plan trained
 * @param export what the export wrote, when the job exported
 */
public record FineTuneResult(List<Fit.Epoch> history, List<Fit.Epoch> earlier, int startEpoch, int epochs,
    String monitor, OptionalInt bestEpoch, OptionalDouble best, boolean stoppedEarly, TrainingPlan plan,
    Optional<ExportResult> export) {
  public FineTuneResult {
    history = List.copyOf(history);
    earlier = List.copyOf(earlier);
    Objects.requireNonNull(monitor, "monitor");
    Objects.requireNonNull(plan, "plan");
    Objects.requireNonNull(export, "export");
  }

  /** The last epoch's logs (empty when nothing ran). */
  public Map<String, Double> lastLogs() {
    return history.isEmpty() ? Map.of() : history.get(history.size() - 1).logs();
  }

  /** Every epoch of the run so far: those before a resume, then this run's. */
  public List<Fit.Epoch> allEpochs() {
    List<Fit.Epoch> all = new ArrayList<>(earlier);
    all.addAll(history);
    return List.copyOf(all);
  }

  /** This result as JSON: every epoch's logs, the best epoch, the plan and the export. */
  public JsonObject toJson() {
    JsonObject o = new JsonObject();
    o.addProperty("monitor", monitor);
    o.addProperty("start_epoch", startEpoch);
    o.addProperty("epochs", epochs);
    o.add("best_epoch", bestEpoch.isPresent() ? new com.google.gson.JsonPrimitive(bestEpoch.getAsInt())
        : JsonNull.INSTANCE);
    o.add("best", best.isPresent() ? new com.google.gson.JsonPrimitive(best.getAsDouble()) : JsonNull.INSTANCE);
    o.addProperty("stopped_early", stoppedEarly);
    o.add("earlier", epochs(earlier));
    o.add("history", epochs(history));
    o.add("plan", PlanJson.toJson(plan));
    o.add("export", export.<JsonElement>map(e -> {
      JsonObject x = new JsonObject();
      x.addProperty("dir", e.dir().toString());
      x.addProperty("mode", e.mode().name());
      x.addProperty("variables", e.variables());
      x.addProperty("bytes", e.bytes());
      x.addProperty("python", e.python());
      return x;
    }).orElse(JsonNull.INSTANCE));
    return o;
  }

  /**
   * Reads what {@link #toJson()} wrote.
   *
   * @throws IllegalArgumentException naming what is missing or malformed
   */
  public static FineTuneResult fromJson(JsonObject o) {
    try {
      Optional<ExportResult> export = Optional.empty();
      if (o.has("export") && o.get("export").isJsonObject()) {
        JsonObject x = o.getAsJsonObject("export");
        Path dir = Path.of(x.get("dir").getAsString());
        ExportResult.Mode mode = ExportResult.Mode.valueOf(x.get("mode").getAsString());
        export = Optional.of(x.has("python")
            ? new ExportResult(dir, mode, x.get("variables").getAsInt(), x.get("bytes").getAsLong(),
                x.get("python").getAsString())
            : new ExportResult(dir, mode, x.get("variables").getAsInt(), x.get("bytes").getAsLong()));
      }
      return new FineTuneResult(epochs(o.getAsJsonArray("history")), epochs(o.getAsJsonArray("earlier")),
          o.get("start_epoch").getAsInt(), o.get("epochs").getAsInt(), o.get("monitor").getAsString(),
          o.get("best_epoch").isJsonNull() ? OptionalInt.empty() : OptionalInt.of(o.get("best_epoch").getAsInt()),
          o.get("best").isJsonNull() ? OptionalDouble.empty() : OptionalDouble.of(o.get("best").getAsDouble()),
          o.get("stopped_early").getAsBoolean(), PlanJson.fromJson(o.getAsJsonObject("plan")), export);
    } catch (IllegalArgumentException e) {
      throw e;
    } catch (RuntimeException e) {
      throw new IllegalArgumentException("not a fine-tuning result: " + e.getMessage(), e);
    }
  }

  /** Writes {@link #toJson()} to {@code file}, atomically: a reader sees the whole result or none. */
  public void write(Path file) {
    try {
      AtomicFiles.writeString(file, new GsonBuilder().setPrettyPrinting().serializeNulls()
          .serializeSpecialFloatingPointValues().create().toJson(toJson()) + "\n");
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write the result " + file + ": " + e.getMessage(), e);
    }
  }

  /**
   * Reads a result {@link #write} wrote.
   *
   * @throws IllegalArgumentException naming the file when it is not one
   */
  public static FineTuneResult read(Path file) {
    try {
      JsonElement parsed = JsonParser.parseString(java.nio.file.Files.readString(file));
      if (!parsed.isJsonObject()) {
        throw new IllegalArgumentException(file + " is not a fine-tuning result: not a JSON object");
      }
      return fromJson(parsed.getAsJsonObject());
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
    } catch (JsonParseException e) {
      throw new IllegalArgumentException(file + " is not valid JSON: " + e.getMessage(), e);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(file + ": " + e.getMessage(), e);
    }
  }

  private static JsonArray epochs(List<Fit.Epoch> list) {
    JsonArray a = new JsonArray();
    list.forEach(e -> a.add(e.toJson()));
    return a;
  }

  private static List<Fit.Epoch> epochs(JsonArray a) {
    List<Fit.Epoch> out = new ArrayList<>();
    a.forEach(e -> out.add(Fit.Epoch.fromJson(e.getAsJsonObject())));
    return out;
  }
}
