package org.finetune.batch;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One fine-tuning run of a batch: {@code finetune train MODEL --task TASK --data DATA --out OUT}
 * plus its flags.
 *
 * @param args flag name to value; an empty value is a bare flag
 * @param sweep the sweep it came from ("" for a plain job)
 * @param settings the swept flags' values of this run
 */
public record Job(String name, Path model, String data, String task, Path out, Map<String, String> args, String sweep,
    Map<String, String> settings) {
  public Job {
    args = Collections.unmodifiableMap(new LinkedHashMap<>(args));
    settings = Collections.unmodifiableMap(new LinkedHashMap<>(settings));
  }

  Job withSweep(String name, Map<String, String> values) {
    return new Job(this.name, model, data, task, out, args, name, values);
  }

  /** The {@code finetune} arguments of this run (without the runner's own flags). */
  public List<String> trainArguments() {
    List<String> out = new ArrayList<>(List.of("train", model.toString(), "--task", task, "--data", data, "--out",
        this.out.toString()));
    args.forEach((k, v) -> {
      out.add("--" + k);
      if (!v.isEmpty()) {
        out.add(v);
      }
    });
    return out;
  }

  /** The swept values as {@code lr=0.001 batch-size=16}, or "" for a plain job. */
  public String describeSettings() {
    List<String> parts = new ArrayList<>();
    settings.forEach((k, v) -> parts.add(k + (v.isEmpty() ? "" : "=" + v)));
    return String.join(" ", parts);
  }
}
