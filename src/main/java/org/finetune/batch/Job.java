package org.finetune.batch;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.finetune.job.JobSpec;

/**
 * One fine-tuning run of a batch: a job ({@link JobSpec}) with a name.
 *
 * @param spec the job, its paths absolute
 * @param sweep the sweep it came from ("" for a plain job)
 * @param settings the swept keys' values of this run
 */
public record Job(String name, JobSpec spec, String sweep, Map<String, String> settings) {
  public Job {
    Objects.requireNonNull(spec, "spec");
    settings = Collections.unmodifiableMap(new LinkedHashMap<>(settings));
  }

  /** The model it fine-tunes. */
  public Path model() {
    return spec.model().orElseThrow();
  }

  /** Where it exports. */
  public Path out() {
    return spec.export().orElseThrow();
  }

  /** {@code image-classification}, {@code video-classification} or {@code causal-lm}. */
  public String task() {
    return spec.task();
  }

  /** The swept values as {@code optimizer.learning_rate=0.001 batch_size=16}, or "" for a plain job. */
  public String describeSettings() {
    List<String> parts = new ArrayList<>();
    settings.forEach((k, v) -> parts.add(k + "=" + v));
    return String.join(" ", parts);
  }
}
