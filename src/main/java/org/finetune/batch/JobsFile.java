package org.finetune.batch;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import com.google.gson.JsonPrimitive;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.finetune.job.JobSpec;

/**
 * A batch of fine-tuning jobs, read from JSON and expanded into one {@link Job} per run. Each job
 * is a job as {@link JobSpec} writes it (the keys {@code finetune train --job FILE} reads), with a
 * name:
 *
 * <pre>
 * {
 *   "defaults": {"model": "...", "data": "...", "new_head": true, "epochs": 3},
 *   "jobs": [
 *     {"name": "cows", "data": "images/", "export": "runs/cows", "optimizer": {"name": "adam", "learning_rate": 0.001}}
 *   ],
 *   "sweeps": [
 *     {"name": "lr", "export": "runs/lr",
 *      "grid": {"optimizer.learning_rate": [0.001, 0.0001], "batch_size": [16, 32]}},
 *     {"name": "rand", "export": "runs/rand", "trials": 6, "sweep_seed": 1,
 *      "random": {"optimizer.learning_rate": {"log_uniform": [1e-5, 1e-2]}, "optimizer.name": {"choice": ["adam", "sgd"]}}}
 *   ]
 * }
 * </pre>
 *
 * <p>A job is {@code defaults} with its own keys on top (objects merge key by key). A sweep's keys
 * are set for each of its runs; a dotted key sets a key inside an object ({@code optimizer.learning_rate}).
 * The batch runner owns {@code checkpoints}, {@code resume}, {@code history}, {@code result} and
 * {@code overwrite}. A sweep's runs are named {@code <sweep>-<i>} (from 1) and exported to
 * {@code <export>/<sweep>-<i>}; a grid runs every combination (the last key varies fastest), a
 * random sweep draws {@code trials} settings from a generator seeded with {@code sweep_seed}.
 * Relative paths are relative to the jobs file. Every job is checked as a whole before anything
 * runs; unknown keys are errors, so a misspelt key is never silently ignored.
 */
public final class JobsFile {
  /** Job keys the runner sets itself. */
  static final Set<String> RESERVED = Set.of("checkpoints", "resume", "history", "result", "overwrite");

  private JobsFile() {}

  /** Reads and expands {@code file}; {@link IllegalArgumentException} names the file and the key at fault. */
  public static List<Job> read(Path file) {
    JsonObject root;
    try {
      JsonElement parsed = JsonParser.parseString(Files.readString(file));
      if (!parsed.isJsonObject()) {
        throw new IllegalArgumentException(file + ": a jobs file is a JSON object with \"jobs\" and/or \"sweeps\"");
      }
      root = parsed.getAsJsonObject();
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read " + file, e);
    } catch (JsonParseException e) {
      throw new IllegalArgumentException(file + " is not valid JSON (" + org.finetune.train.PlanJson.syntaxError(e)
          + "); fix it there");
    }
    Path base = file.toAbsolutePath().getParent();
    try {
      return expand(root, base);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(file + ": " + e.getMessage());
    }
  }

  static List<Job> expand(JsonObject root, Path base) {
    known(root, "the top level", "defaults", "jobs", "sweeps");
    JsonObject defaults = root.has("defaults") ? object(root.get("defaults"), "defaults") : new JsonObject();
    List<Job> jobs = new ArrayList<>();
    if (root.has("jobs")) {
      JsonArray list = array(root.get("jobs"), "jobs");
      for (int i = 0; i < list.size(); i++) {
        String where = "jobs[" + i + "]";
        JsonObject j = object(list.get(i), where).deepCopy();
        String name = name(j, where);
        j.remove("name");
        jobs.add(job(name, merged(defaults, j), base, where, "", Map.of()));
      }
    }
    if (root.has("sweeps")) {
      JsonArray list = array(root.get("sweeps"), "sweeps");
      for (int i = 0; i < list.size(); i++) {
        String where = "sweeps[" + i + "]";
        JsonObject s = object(list.get(i), where).deepCopy();
        String name = name(s, where);
        if (s.has("grid") == s.has("random")) {
          throw new IllegalArgumentException(where + " needs exactly one of \"grid\" and \"random\"");
        }
        List<Map<String, JsonElement>> settings = s.has("grid") ? grid(object(s.get("grid"), where + ".grid"),
            where + ".grid") : random(object(s.get("random"), where + ".random"), where, s);
        for (String k : List.of("name", "grid", "random", "trials", "sweep_seed")) {
          s.remove(k);
        }
        JsonObject fixed = merged(defaults, s);
        Path export = resolve(base, string(fixed, "export", where));
        for (int k = 0; k < settings.size(); k++) {
          JsonObject run = fixed.deepCopy();
          settings.get(k).forEach((key, value) -> set(run, key, value, where));
          String runName = name + "-" + (k + 1);
          run.addProperty("export", export.resolve(runName).toString());
          jobs.add(job(runName, run, base, where, name, settings.get(k)));
        }
      }
    }
    if (jobs.isEmpty()) {
      throw new IllegalArgumentException("no jobs: give \"jobs\" or \"sweeps\"");
    }
    Set<String> names = new HashSet<>();
    Set<Path> outs = new HashSet<>();
    for (Job j : jobs) {
      if (!names.add(j.name())) {
        throw new IllegalArgumentException("two jobs are named " + j.name());
      }
      if (!outs.add(j.out())) {
        throw new IllegalArgumentException("two jobs export to " + j.out());
      }
    }
    return jobs;
  }

  private static String name(JsonObject o, String where) {
    String name = string(o, "name", where);
    if (!name.matches("[A-Za-z0-9._-]+")) {
      throw new IllegalArgumentException(where + ": name '" + name + "' may hold letters, digits, '.', '_' and '-'"
          + " only (it names files)");
    }
    return name;
  }

  /** One run: its job checked as a whole, paths made absolute. */
  private static Job job(String name, JsonObject json, Path base, String where, String sweep,
      Map<String, JsonElement> settings) {
    for (String k : json.keySet()) {
      if (RESERVED.contains(k)) {
        throw new IllegalArgumentException(where + ": \"" + k + "\" is set by the batch runner; leave it out");
      }
    }
    JobSpec spec;
    try {
      spec = JobSpec.fromJson(json, base);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(where + ": " + e.getMessage());
    }
    for (String k : List.of("model", "export")) {
      if (!json.has(k)) {
        throw new IllegalArgumentException(where + " needs \"" + k + "\" (or give it in \"defaults\")");
      }
    }
    Map<String, String> shown = new LinkedHashMap<>();
    settings.forEach((k, v) -> shown.put(k, v.isJsonPrimitive() ? v.getAsString() : v.toString()));
    return new Job(name, spec, sweep, shown);
  }

  /** {@code over} on top of {@code under}: objects merge key by key, anything else replaces. */
  static JsonObject merged(JsonObject under, JsonObject over) {
    JsonObject out = under.deepCopy();
    for (Map.Entry<String, JsonElement> e : over.entrySet()) {
      JsonElement was = out.get(e.getKey());
      out.add(e.getKey(), was != null && was.isJsonObject() && e.getValue().isJsonObject()
          ? merged(was.getAsJsonObject(), e.getValue().getAsJsonObject()) : e.getValue().deepCopy());
    }
    return out;
  }

  /** Sets a key, or with dots a key inside an object ({@code optimizer.learning_rate}). */
  private static void set(JsonObject job, String key, JsonElement value, String where) {
    String[] path = key.split("\\.");
    JsonObject at = job;
    for (int i = 0; i < path.length - 1; i++) {
      JsonElement next = at.get(path[i]);
      if (next == null) {
        next = new JsonObject();
        at.add(path[i], next);
      } else if (!next.isJsonObject()) {
        throw new IllegalArgumentException(where + ": \"" + key + "\" sets a key inside \"" + path[i]
            + "\", which is not an object");
      }
      at = next.getAsJsonObject();
    }
    at.add(path[path.length - 1], value.deepCopy());
  }

  private static Path resolve(Path base, String p) {
    Path path = Path.of(p);
    return (path.isAbsolute() ? path : base.resolve(path)).normalize();
  }

  private static List<Map<String, JsonElement>> grid(JsonObject grid, String where) {
    List<Map<String, JsonElement>> out = new ArrayList<>();
    out.add(new LinkedHashMap<>());
    for (Map.Entry<String, JsonElement> e : grid.entrySet()) {
      JsonArray values = array(e.getValue(), where + "." + e.getKey());
      if (values.isEmpty()) {
        throw new IllegalArgumentException(where + "." + e.getKey() + " lists no values");
      }
      List<Map<String, JsonElement>> next = new ArrayList<>();
      for (Map<String, JsonElement> partial : out) {
        for (JsonElement v : values) {
          Map<String, JsonElement> m = new LinkedHashMap<>(partial);
          m.put(e.getKey(), v);
          next.add(m);
        }
      }
      out = next;
    }
    return out;
  }

  private static List<Map<String, JsonElement>> random(JsonObject space, String where, JsonObject sweep) {
    if (!sweep.has("trials")) {
      throw new IllegalArgumentException(where + ": a random sweep needs \"trials\"");
    }
    int trials = sweep.get("trials").getAsInt();
    if (trials < 1) {
      throw new IllegalArgumentException(where + ".trials must be >= 1");
    }
    Random rng = new Random(sweep.has("sweep_seed") ? sweep.get("sweep_seed").getAsLong() : 1);
    List<Map<String, JsonElement>> out = new ArrayList<>();
    for (int t = 0; t < trials; t++) {
      Map<String, JsonElement> m = new LinkedHashMap<>();
      for (Map.Entry<String, JsonElement> e : space.entrySet()) {
        String at = where + ".random." + e.getKey();
        JsonObject dist = object(e.getValue(), at);
        if (dist.size() != 1) {
          throw new IllegalArgumentException(at + " takes one of log_uniform, uniform, choice");
        }
        String kind = dist.keySet().iterator().next();
        JsonArray a = array(dist.get(kind), at + "." + kind);
        JsonElement v = switch (kind) {
          case "log_uniform" -> {
            double lo = Math.log(range(a, at)[0]);
            double hi = Math.log(range(a, at)[1]);
            yield rounded("%.3g", Math.exp(lo + rng.nextDouble() * (hi - lo)));
          }
          case "uniform" -> {
            double[] r = range(a, at);
            yield rounded("%.4g", r[0] + rng.nextDouble() * (r[1] - r[0]));
          }
          case "choice" -> {
            if (a.isEmpty()) {
              throw new IllegalArgumentException(at + ".choice lists no values");
            }
            yield a.get(rng.nextInt(a.size()));
          }
          default -> throw new IllegalArgumentException(at + ": unknown distribution '" + kind
              + "'; use log_uniform, uniform or choice");
        };
        m.put(e.getKey(), v);
      }
      out.add(m);
    }
    return out;
  }

  /** A drawn value to the digits shown, so that the run's name and its job agree. */
  private static JsonPrimitive rounded(String format, double v) {
    return new JsonPrimitive(Double.parseDouble(String.format(Locale.ROOT, format, v)));
  }

  private static double[] range(JsonArray a, String where) {
    if (a.size() != 2) {
      throw new IllegalArgumentException(where + " takes [low, high]");
    }
    double lo = a.get(0).getAsDouble();
    double hi = a.get(1).getAsDouble();
    if (!(lo < hi) || lo <= 0 && where.contains("log")) {
      throw new IllegalArgumentException(where + " needs 0 < low < high for log_uniform, low < high otherwise");
    }
    return new double[] {lo, hi};
  }

  private static void known(JsonObject o, String where, String... keys) {
    Set<String> allowed = Set.of(keys);
    for (String k : o.keySet()) {
      if (!allowed.contains(k)) {
        throw new IllegalArgumentException(where + ": unknown key \"" + k + "\" (known: " + String.join(", ", keys)
            + ")");
      }
    }
  }

  private static JsonObject object(JsonElement e, String where) {
    if (e == null || !e.isJsonObject()) {
      throw new IllegalArgumentException(where + " must be a JSON object");
    }
    return e.getAsJsonObject();
  }

  private static JsonArray array(JsonElement e, String where) {
    if (e == null || !e.isJsonArray()) {
      throw new IllegalArgumentException(where + " must be a JSON array");
    }
    return e.getAsJsonArray();
  }

  private static String string(JsonObject o, String key, String where) {
    if (!o.has(key) || o.get(key).isJsonNull()) {
      throw new IllegalArgumentException(where + " needs \"" + key + "\"");
    }
    JsonElement v = o.get(key);
    if (!v.isJsonPrimitive() || !v.getAsJsonPrimitive().isString()) {
      throw new IllegalArgumentException(where + "." + key + " must be a string");
    }
    return v.getAsString();
  }
}
