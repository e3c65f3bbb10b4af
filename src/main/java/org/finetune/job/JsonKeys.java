package org.finetune.job;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonPrimitive;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.finetune.hint.Setting;

/**
 * The keys of one job object read as types: strings, flags, numbers, objects and paths (relative
 * ones resolved against the job file's folder). A key of the wrong type is a {@link JobException}
 * naming the key and what to give.
 */
final class JsonKeys {
  private final JsonObject json;
  private final Optional<Path> base;

  JsonKeys(JsonObject json, Optional<Path> base) {
    this.json = json;
    this.base = base;
  }

  Optional<Path> path(String key) {
    return json.has(key) ? Optional.of(resolve(string(key))) : Optional.empty();
  }

  List<Path> paths(String key) {
    JsonElement e = json.get(key);
    List<Path> out = new ArrayList<>();
    if (e.isJsonArray()) {
      for (JsonElement p : e.getAsJsonArray()) {
        if (!p.isJsonPrimitive() || !p.getAsJsonPrimitive().isString()) {
          throw bad("\"" + key + "\" lists " + p, "list paths as strings");
        }
        out.add(resolve(p.getAsString()));
      }
    } else {
      out.add(resolve(string(key)));
    }
    return out;
  }

  Path resolve(String p) {
    Path path = Path.of(p);
    return path.isAbsolute() || base.isEmpty() ? path : base.get().resolve(path).normalize();
  }

  String string(String key) {
    JsonElement e = json.get(key);
    if (e == null || !e.isJsonPrimitive() || !e.getAsJsonPrimitive().isString()) {
      throw bad("\"" + key + "\" is " + e, "give a string");
    }
    return e.getAsString();
  }

  boolean flag(String key) {
    JsonElement e = json.get(key);
    if (e == null) {
      return false;
    }
    if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isBoolean()) {
      throw bad("\"" + key + "\" is " + e, "give true or false");
    }
    return e.getAsBoolean();
  }

  double number(String key) {
    JsonElement e = json.get(key);
    if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isNumber()) {
      throw bad("\"" + key + "\" is " + e, "give a number");
    }
    return e.getAsDouble();
  }

  long longNumber(String key) {
    double d = number(key);
    if (d != Math.rint(d) || Math.abs(d) > 1L << 53) {
      throw bad("\"" + key + "\" is " + json.get(key), "give a whole number");
    }
    return (long) d;
  }

  int wholeNumber(String key) {
    return positive(json.get(key), key);
  }

  int positive(JsonElement e, String key) {
    if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isNumber() || e.getAsDouble() != Math.rint(e.getAsDouble())
        || e.getAsDouble() < 1 || e.getAsDouble() > Integer.MAX_VALUE) {
      throw bad("\"" + key + "\" is " + e, "give a whole number >= 1");
    }
    return e.getAsInt();
  }

  JsonObject object(String key) {
    JsonElement e = json.get(key);
    if (!e.isJsonObject()) {
      throw bad("\"" + key + "\" is " + e, "give a JSON object");
    }
    return e.getAsJsonObject();
  }

  JsonArray array(String key) {
    JsonElement e = json.get(key);
    if (!e.isJsonArray()) {
      throw bad("\"" + key + "\" is " + e, "give a JSON array");
    }
    for (JsonElement x : e.getAsJsonArray()) {
      if (!(x instanceof JsonPrimitive p) || !p.isString()) {
        throw bad("\"" + key + "\" lists " + x, "list strings");
      }
    }
    return e.getAsJsonArray();
  }

  <T> T parse(String key, java.util.function.Supplier<T> read) {
    try {
      return read.get();
    } catch (JobException e) {
      throw e;
    } catch (IllegalArgumentException | IllegalStateException e) {
      throw bad("\"" + key + "\": " + e.getMessage(), "");
    }
  }

  static JobException bad(String problem, String fix) {
    return new JobException(problem, Setting.NONE, fix);
  }
}
