package org.finetune.job;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonPrimitive;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.function.Consumer;
import org.finetune.hint.Setting;
import org.finetune.train.HeadSpec;
import org.finetune.train.LossSpec;

/**
 * The keys of an arrays job ({@code "task": "arrays"}): the inputs' file, {@code targets} and
 * {@code validation_targets} (a .npy path, array names, or an object of output key to either),
 * {@code validation_data}, {@code loss} (a Keras loss name, or an object of output key to one),
 * {@code loss_weights}, {@code from_logits}, {@code shuffle}, {@code head_units} and
 * {@code head_activation}, each read into a setting of the job's builder.
 */
final class ArrayJobKeys {
  private final JsonObject json;
  private final JsonKeys keys;
  private final Path here;
  private final Consumer<Consumer<FineTuneJob.Builder>> settings;

  /**
   * @param here the job file's folder, which relative target files resolve against
   * @param settings takes each setting read
   */
  ArrayJobKeys(JsonObject json, JsonKeys keys, Path here, Consumer<Consumer<FineTuneJob.Builder>> settings) {
    this.json = json;
    this.keys = keys;
    this.here = here;
    this.settings = settings;
  }

  /** The arrays task: inputs, targets, validation, the loss and what shapes a new head. */
  void read() {
    for (String k : List.of("frames", "temporal", "sequence_length", "preprocess", "image_size", "flip", "zoom",
        "brightness", "feature_cache")) {
      if (json.has(k)) {
        throw bad("\"" + k + "\" applies to images or text, not to arrays", "leave it out");
      }
    }
    if (!json.has("targets")) {
      throw new JobException("the job has no \"targets\"", Setting.DATA,
          "give a .npy file of targets, or the names of the arrays (CSV columns) that hold them");
    }
    JobData.Targets targets = targets("targets");
    JobData.Arrays data = new JobData.Arrays(keys.resolve(keys.string("data")), targets, Optional.empty());
    if (json.has("validation_data")) {
      if (json.has("validation_split")) {
        throw new JobException("the job has both \"validation_data\" and \"validation_split\"", Setting.VALIDATION,
            "give one of them");
      }
      JobData.Targets vt = json.has("validation_targets")
          ? targets("validation_targets") : targets.file().isEmpty() && targets.byOutput().values().stream()
              .allMatch(t -> t.file().isEmpty()) ? targets : null;
      if (vt == null) {
        throw bad("the validation data has no \"validation_targets\"", "give its .npy file of targets");
      }
      data = data.validatedOn(new JobData.Arrays(keys.resolve(keys.string("validation_data")), vt, Optional.empty()));
    } else if (json.has("validation_targets")) {
      throw bad("\"validation_targets\" needs \"validation_data\"", "give the validation inputs too");
    }
    JobData.Arrays arrays = data;
    settings.accept(b -> b.data(arrays));
    if (json.has("loss") && json.get("loss").isJsonObject()) {
      for (Map.Entry<String, JsonElement> e : keys.object("loss").entrySet()) {
        LossSpec loss = lossNamed(e.getValue(), "loss." + e.getKey());
        settings.accept(b -> b.loss(e.getKey(), loss));
      }
    } else if (json.has("loss")) {
      LossSpec loss = lossNamed(json.get("loss"), "loss");
      settings.accept(b -> b.loss(loss));
    }
    if (json.has("loss_weights")) {
      for (Map.Entry<String, JsonElement> e : keys.object("loss_weights").entrySet()) {
        JsonElement w = e.getValue();
        if (!w.isJsonPrimitive() || !w.getAsJsonPrimitive().isNumber() || !(w.getAsDouble() >= 0)) {
          throw bad("\"loss_weights\" gives " + e.getKey() + " " + w, "give each output a number >= 0");
        }
        double weight = w.getAsDouble();
        settings.accept(b -> b.lossWeight(e.getKey(), weight));
      }
    }
    if (json.has("shuffle")) {
      boolean shuffle = keys.flag("shuffle");
      settings.accept(b -> b.shuffle(shuffle));
    }
    if (json.has("from_logits")) {
      boolean logits = keys.flag("from_logits");
      settings.accept(b -> b.fromLogits(logits));
    }
    if (json.has("head_units")) {
      int units = keys.wholeNumber("head_units");
      settings.accept(b -> b.headUnits(units));
    }
    if (json.has("head_activation")) {
      String a = keys.string("head_activation").toUpperCase(Locale.ROOT);
      if (!List.of("SOFTMAX", "SIGMOID", "LINEAR").contains(a)) {
        throw bad("\"head_activation\" is '" + keys.string("head_activation") + "'", "use softmax, sigmoid or linear");
      }
      settings.accept(b -> b.headActivation(HeadSpec.Activation.valueOf(a)));
    }
  }

  /**
   * Targets as a job writes them: a {@code .npy} path or array names (a string), or an object of
   * output key to either (several outputs).
   */
  private JobData.Targets targets(String key) {
    JsonElement e = json.get(key);
    if (e.isJsonObject()) {
      java.util.Map<String, JobData.Targets> byOutput = new java.util.LinkedHashMap<>();
      for (Map.Entry<String, JsonElement> o : e.getAsJsonObject().entrySet()) {
        if (!o.getValue().isJsonPrimitive() || !o.getValue().getAsJsonPrimitive().isString()) {
          throw bad("\"" + key + "\" gives " + o.getKey() + " " + o.getValue(), "give a .npy path or an array's name");
        }
        byOutput.put(o.getKey(), keys.parse(key, () -> JobData.Targets.parse(o.getValue().getAsString(), here)));
      }
      return keys.parse(key, () -> JobData.Targets.byOutput(byOutput));
    }
    return keys.parse(key, () -> JobData.Targets.parse(keys.string(key), here));
  }

  private LossSpec lossNamed(JsonElement e, String key) {
    if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isString()) {
      throw bad("\"" + key + "\" is " + e, "give a loss by Keras's name");
    }
    LossSpec loss = keys.parse(key, () -> LossSpec.byName(e.getAsString()));
    if (loss == LossSpec.CAUSAL_LM) {
      throw bad("\"" + key + "\" is causal_lm, the loss of the causal-lm task", "use that task for text");
    }
    return loss;
  }

  /** Targets with their {@code .npy} paths made absolute (array names as they are). */
  static JsonElement absolute(JsonElement e, JsonKeys keys) {
    if (e.isJsonObject()) {
      JsonObject o = new JsonObject();
      e.getAsJsonObject().entrySet().forEach(x -> o.add(x.getKey(), absolute(x.getValue(), keys)));
      return o;
    }
    String text = e.getAsString();
    if (text.contains("=")) {
      List<String> pairs = new ArrayList<>();
      for (String pair : text.split(",")) {
        int eq = pair.indexOf('=');
        pairs.add(pair.substring(0, eq + 1) + absolute(new JsonPrimitive(pair.substring(eq + 1).strip()), keys)
            .getAsString());
      }
      return new JsonPrimitive(String.join(",", pairs));
    }
    return new JsonPrimitive(text.toLowerCase(Locale.ROOT).endsWith(".npy")
        ? keys.resolve(text).toAbsolutePath().toString() : text);
  }

  private static JobException bad(String problem, String fix) {
    return JsonKeys.bad(problem, fix);
  }
}
