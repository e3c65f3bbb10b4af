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

/**
 * A batch of fine-tuning jobs, read from JSON and expanded into one {@link Job} per run.
 *
 * <pre>
 * {
 *   "defaults": {"model": "...", "data": "...", "task": "image-classification", "args": {"epochs": 3}},
 *   "jobs": [
 *     {"name": "cows", "model": "m/", "data": "images/", "out": "runs/cows", "args": {"head": true, "lr": 0.001}}
 *   ],
 *   "sweeps": [
 *     {"name": "lr", "out": "runs/lr", "args": {"head": true},
 *      "grid": {"lr": [0.001, 0.0001], "batch-size": [16, 32]}},
 *     {"name": "rand", "out": "runs/rand", "trials": 6, "seed": 1,
 *      "random": {"lr": {"log_uniform": [1e-5, 1e-2]}, "optimizer": {"choice": ["adam", "sgd"]}}}
 *   ]
 * }
 * </pre>
 *
 * <p>{@code args} are {@code finetune train} flags without their dashes: a string or number is
 * the flag's value, {@code true} the bare flag, {@code false} or {@code null} leaves it out. The
 * batch runner owns {@code out}, {@code history}, {@code checkpoints}, {@code resume},
 * {@code result} and {@code overwrite}. A sweep's runs are named {@code <sweep>-<i>} (from 1) and exported to
 * {@code <out>/<sweep>-<i>}; a grid runs every combination (the last key varies fastest), a
 * random sweep draws {@code trials} settings from a seeded generator. Relative paths are relative
 * to the jobs file. Unknown keys are errors, so a misspelt key is never silently ignored.
 */
public final class JobsFile {
  /** Flags the runner sets itself. */
  static final Set<String> RESERVED = Set.of("out", "history", "checkpoints", "resume", "overwrite", "result");

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
    known(defaults, "defaults", "model", "data", "task", "args");
    List<Job> jobs = new ArrayList<>();
    if (root.has("jobs")) {
      JsonArray list = array(root.get("jobs"), "jobs");
      for (int i = 0; i < list.size(); i++) {
        String where = "jobs[" + i + "]";
        JsonObject j = object(list.get(i), where);
        known(j, where, "name", "model", "data", "task", "out", "args");
        jobs.add(job(string(j, "name", where, null), j, defaults, args(j, defaults, where), base, where,
            resolve(base, string(j, "out", where, null))));
      }
    }
    if (root.has("sweeps")) {
      JsonArray list = array(root.get("sweeps"), "sweeps");
      for (int i = 0; i < list.size(); i++) {
        String where = "sweeps[" + i + "]";
        JsonObject s = object(list.get(i), where);
        known(s, where, "name", "model", "data", "task", "out", "args", "grid", "random", "trials", "seed");
        String name = string(s, "name", where, null);
        Path out = resolve(base, string(s, "out", where, null));
        Map<String, String> fixed = args(s, defaults, where);
        List<Map<String, String>> settings;
        if (s.has("grid") == s.has("random")) {
          throw new IllegalArgumentException(where + " needs exactly one of \"grid\" and \"random\"");
        }
        settings = s.has("grid") ? grid(object(s.get("grid"), where + ".grid"), where + ".grid")
            : random(object(s.get("random"), where + ".random"), where, s);
        for (int k = 0; k < settings.size(); k++) {
          Map<String, String> args = new LinkedHashMap<>(fixed);
          args.putAll(settings.get(k));
          String run = name + "-" + (k + 1);
          jobs.add(job(run, s, defaults, args, base, where, out.resolve(run)).withSweep(name, settings.get(k)));
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

  private static Job job(String name, JsonObject j, JsonObject defaults, Map<String, String> args, Path base,
      String where, Path out) {
    if (!name.matches("[A-Za-z0-9._-]+")) {
      throw new IllegalArgumentException(where + ": name '" + name + "' may hold letters, digits, '.', '_' and '-'"
          + " only (it names files)");
    }
    String model = j.has("model") ? string(j, "model", where, null) : string(defaults, "model", where, null);
    String data = j.has("data") ? string(j, "data", where, null) : string(defaults, "data", where, null);
    String task = j.has("task") ? string(j, "task", where, null)
        : string(defaults, "task", where, "image-classification");
    return new Job(name, resolve(base, model), data(base, data), task, out, args, "", Map.of());
  }

  /** Data may be a comma-separated list of paths (text); each is resolved against the jobs file. */
  private static String data(Path base, String value) {
    List<String> parts = new ArrayList<>();
    for (String p : value.split(",")) {
      parts.add(resolve(base, p.trim()).toString());
    }
    return String.join(",", parts);
  }

  private static Path resolve(Path base, String p) {
    Path path = Path.of(p);
    return (path.isAbsolute() ? path : base.resolve(path)).normalize();
  }

  private static Map<String, String> args(JsonObject j, JsonObject defaults, String where) {
    Map<String, String> out = new LinkedHashMap<>();
    if (defaults.has("args")) {
      out.putAll(flags(object(defaults.get("args"), "defaults.args"), "defaults.args"));
    }
    if (j.has("args")) {
      for (Map.Entry<String, String> e : flags(object(j.get("args"), where + ".args"), where + ".args").entrySet()) {
        if (e.getValue() == null) {
          out.remove(e.getKey());
        } else {
          out.put(e.getKey(), e.getValue());
        }
      }
    }
    out.values().removeIf(v -> v == null);
    return out;
  }

  /** Flag name to value ("" for a bare flag, null for one left out). */
  private static Map<String, String> flags(JsonObject args, String where) {
    Map<String, String> out = new LinkedHashMap<>();
    for (Map.Entry<String, JsonElement> e : args.entrySet()) {
      out.put(flag(e.getKey(), where), value(e.getValue(), where + "." + e.getKey()));
    }
    return out;
  }

  private static String flag(String key, String where) {
    String k = key.startsWith("--") ? key.substring(2) : key;
    if (RESERVED.contains(k)) {
      throw new IllegalArgumentException(where + ": --" + k + " is set by the batch runner; leave it out");
    }
    if (!k.matches("[a-z][a-z0-9-]*")) {
      throw new IllegalArgumentException(where + ": '" + key + "' is not a flag name");
    }
    return k;
  }

  private static String value(JsonElement v, String where) {
    if (v == null || v.isJsonNull()) {
      return null;
    }
    if (v.isJsonPrimitive()) {
      JsonPrimitive p = v.getAsJsonPrimitive();
      if (p.isBoolean()) {
        return p.getAsBoolean() ? "" : null;
      }
      return p.isNumber() ? number(p) : p.getAsString();
    }
    throw new IllegalArgumentException(where + " must be a string, number or boolean");
  }

  private static String number(JsonPrimitive p) {
    double d = p.getAsDouble();
    return d == Math.rint(d) && Math.abs(d) < 1e15 && !p.getAsString().contains(".")
        && !p.getAsString().toLowerCase(Locale.ROOT).contains("e") ? Long.toString((long) d) : p.getAsString();
  }

  private static List<Map<String, String>> grid(JsonObject grid, String where) {
    List<Map<String, String>> out = new ArrayList<>();
    out.add(new LinkedHashMap<>());
    for (Map.Entry<String, JsonElement> e : grid.entrySet()) {
      String flag = flag(e.getKey(), where);
      JsonArray values = array(e.getValue(), where + "." + e.getKey());
      if (values.isEmpty()) {
        throw new IllegalArgumentException(where + "." + e.getKey() + " lists no values");
      }
      List<Map<String, String>> next = new ArrayList<>();
      for (Map<String, String> partial : out) {
        for (JsonElement v : values) {
          Map<String, String> m = new LinkedHashMap<>(partial);
          m.put(flag, value(v, where + "." + e.getKey()));
          next.add(m);
        }
      }
      out = next;
    }
    return out;
  }

  private static List<Map<String, String>> random(JsonObject space, String where, JsonObject sweep) {
    if (!sweep.has("trials")) {
      throw new IllegalArgumentException(where + ": a random sweep needs \"trials\"");
    }
    int trials = sweep.get("trials").getAsInt();
    if (trials < 1) {
      throw new IllegalArgumentException(where + ".trials must be >= 1");
    }
    Random rng = new Random(sweep.has("seed") ? sweep.get("seed").getAsLong() : 1);
    List<Map<String, String>> out = new ArrayList<>();
    for (int t = 0; t < trials; t++) {
      Map<String, String> m = new LinkedHashMap<>();
      for (Map.Entry<String, JsonElement> e : space.entrySet()) {
        String at = where + ".random." + e.getKey();
        JsonObject dist = object(e.getValue(), at);
        if (dist.size() != 1) {
          throw new IllegalArgumentException(at + " takes one of log_uniform, uniform, choice");
        }
        String kind = dist.keySet().iterator().next();
        JsonArray a = array(dist.get(kind), at + "." + kind);
        String v = switch (kind) {
          case "log_uniform" -> {
            double lo = Math.log(range(a, at)[0]);
            double hi = Math.log(range(a, at)[1]);
            yield String.format(Locale.ROOT, "%.3g", Math.exp(lo + rng.nextDouble() * (hi - lo)));
          }
          case "uniform" -> {
            double[] r = range(a, at);
            yield String.format(Locale.ROOT, "%.4g", r[0] + rng.nextDouble() * (r[1] - r[0]));
          }
          case "choice" -> {
            if (a.isEmpty()) {
              throw new IllegalArgumentException(at + ".choice lists no values");
            }
            yield value(a.get(rng.nextInt(a.size())), at);
          }
          default -> throw new IllegalArgumentException(at + ": unknown distribution '" + kind
              + "'; use log_uniform, uniform or choice");
        };
        m.put(flag(e.getKey(), where), v);
      }
      out.add(m);
    }
    return out;
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

  private static String string(JsonObject o, String key, String where, String fallback) {
    if (!o.has(key) || o.get(key).isJsonNull()) {
      if (fallback != null) {
        return fallback;
      }
      throw new IllegalArgumentException(where + " needs \"" + key + "\"");
    }
    JsonElement v = o.get(key);
    if (!v.isJsonPrimitive() || !v.getAsJsonPrimitive().isString()) {
      throw new IllegalArgumentException(where + "." + key + " must be a string");
    }
    return v.getAsString();
  }
}
