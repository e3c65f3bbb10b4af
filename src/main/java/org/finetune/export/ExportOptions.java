package org.finetune.export;

import com.google.gson.JsonObject;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * How to write an export.
 *
 * @param overwrite replace an existing output directory (otherwise it is refused)
 * @param version write TF Serving's layout, {@code <out>/<version>/}, instead of {@code <out>/}
 * @param epochs epochs trained, for the provenance (empty: not tracked by the caller)
 * @param metrics final metrics by name, for the provenance
 * @param datasetDigest a digest of the training data, for the provenance
 * @param extra more provenance, stored under {@code "extra"}
 */
public record ExportOptions(boolean overwrite, OptionalLong version, OptionalLong epochs, Map<String, Double> metrics,
    Optional<String> datasetDigest, Optional<JsonObject> extra) {
  public ExportOptions {
    Objects.requireNonNull(version, "version");
    Objects.requireNonNull(epochs, "epochs");
    metrics = Map.copyOf(metrics);
    Objects.requireNonNull(datasetDigest, "datasetDigest");
    Objects.requireNonNull(extra, "extra");
    if (version.isPresent() && version.getAsLong() < 0) {
      throw new IllegalArgumentException("a serving version must be >= 0, got " + version.getAsLong());
    }
  }

  /** No overwriting, plain layout, no extra provenance. */
  public static ExportOptions defaults() {
    return new ExportOptions(false, OptionalLong.empty(), OptionalLong.empty(), Map.of(), Optional.empty(),
        Optional.empty());
  }

  public ExportOptions overwriting(boolean replace) {
    return new ExportOptions(replace, version, epochs, metrics, datasetDigest, extra);
  }

  public ExportOptions servingVersion(long v) {
    return new ExportOptions(overwrite, OptionalLong.of(v), epochs, metrics, datasetDigest, extra);
  }

  /** More provenance, stored under {@code "extra"} (the train command records the class names there). */
  public ExportOptions withExtra(JsonObject more) {
    return new ExportOptions(overwrite, version, epochs, metrics, datasetDigest, Optional.of(more));
  }

  public ExportOptions trainingRecord(long epochCount, Map<String, Double> finalMetrics, Optional<String> data) {
    return new ExportOptions(overwrite, version, OptionalLong.of(epochCount), finalMetrics, data, extra);
  }
}
