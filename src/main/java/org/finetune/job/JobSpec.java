package org.finetune.job;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.function.Consumer;
import org.finetune.data.ImageOps;
import org.finetune.hint.Setting;
import org.finetune.train.Fit;
import org.finetune.train.HeadSpec;
import org.finetune.train.OptimizerSpec;
import org.finetune.train.PlanJson;
import org.finetune.train.Selector;

/**
 * A fine-tuning job written down as JSON: what {@code finetune train --job FILE} runs, what each
 * run of a batch is, and what a service can keep or send. Every key is a {@link FineTuneJob.Builder}
 * setting (absent: the builder's default); unknown keys are errors, so a misspelt key is never
 * silently ignored. Relative paths are relative to the file's folder.
 *
 * <pre>
 * {"model": "savedmodels/vgg16", "data": "images", "new_head": true, "epochs": 4, "unfreeze_every": 2,
 *  "optimizer": {"name": "adam", "learning_rate": 0.001}, "checkpoints": "ckpt", "export": "out"}
 * </pre>
 *
 * <p>Keys: {@code model}; {@code task} ({@code image-classification}, the default,
 * {@code video-classification}, {@code causal-lm} or {@code arrays}); {@code data} (a folder, for
 * text a path or a list of them, for arrays a .npz, .npy or CSV file); {@code validation_data}
 * (text, arrays), {@code validation_split}; for arrays {@code targets} and
 * {@code validation_targets} (a .npy path, array names, or an object of output key to either),
 * {@code loss} (a Keras loss name, or an object of output key to one), {@code loss_weights} (an
 * object of output key to weight), {@code from_logits}, {@code shuffle}, {@code head_units} and
 * {@code head_activation}; {@code frames} and
 * {@code temporal} ({@code conv} or {@code average}) for video; {@code new_head},
 * {@code hidden_units} and {@code dropout}, {@code features_at}; {@code preprocess},
 * {@code image_size} ({@code [height, width]}), {@code flip}, {@code zoom}, {@code brightness},
 * {@code feature_cache}; {@code seed}, {@code strict}, {@code batch_size}, {@code epochs},
 * {@code sequence_length}; {@code plan} (a plan object, as the plan files), {@code optimizer} (the
 * plan's optimizer object, Adam when it names none; absent keys take Keras's defaults), {@code schedule}
 * ({@code constant}, {@code cosine} or {@code slanted}), {@code l2sp}, {@code lora} (low-rank
 * adapters: {@code {"rank", "alpha", "targets", "seed"}}, as the plan files; {@code lora_export}: where
 * to write them apart too); {@code train} or
 * {@code freeze} (selectors), {@code unfreeze_every}, {@code discriminative_lr}, {@code groups}
 * (selectors, top first); {@code early_stopping} and {@code reduce_lr_on_plateau} (patience in
 * epochs), {@code on_non_finite} ({@code stop} or {@code skip}); {@code checkpoints},
 * {@code checkpoint_every}, {@code resume}, {@code history}, {@code tensorboard}, {@code curves},
 * {@code export}, {@code overwrite}, and {@code result} (where whoever runs the job writes its
 * {@link FineTuneResult}).
 */
public final class JobSpec {
  /** Every key a job may have. */
  public static final List<String> KEYS = List.of("model", "task", "data", "validation_data", "validation_split",
      "frames", "temporal", "new_head", "hidden_units", "dropout", "features_at", "preprocess", "image_size", "flip",
      "zoom", "brightness", "feature_cache", "seed", "strict", "batch_size", "epochs", "sequence_length", "plan",
      "optimizer", "schedule", "l2sp", "train", "freeze", "unfreeze_every", "discriminative_lr", "groups",
      "early_stopping", "reduce_lr_on_plateau", "on_non_finite", "checkpoints", "checkpoint_every", "resume", "history",
      "tensorboard", "curves", "export", "overwrite", "result", "targets", "validation_targets", "loss", "loss_weights",
      "from_logits", "shuffle", "head_units", "head_activation", "lora", "lora_export");
  private static final List<String> TASKS = List.of("image-classification", "video-classification", "causal-lm",
      "arrays");
  private static final List<String> ARRAYS_ONLY = List.of("targets", "validation_targets", "loss", "loss_weights",
      "from_logits", "shuffle", "head_units", "head_activation");
  private static final List<String> IMAGE_ONLY = List.of("new_head", "hidden_units", "dropout", "features_at",
      "preprocess", "image_size", "flip", "zoom", "brightness", "feature_cache");

  private final JsonObject json;
  private final Optional<Path> base;
  private final List<Consumer<FineTuneJob.Builder>> settings = new ArrayList<>();
  private final JsonKeys keys;

  private JobSpec(JsonObject json, Optional<Path> base) {
    this.json = json.deepCopy();
    this.base = base.map(b -> b.toAbsolutePath().normalize());
    this.keys = new JsonKeys(this.json, this.base);
    for (String k : json.keySet()) {
      if (!KEYS.contains(k)) {
        throw JsonKeys.bad("unknown key \"" + k + "\"", "use one of " + String.join(", ", KEYS));
      }
    }
    data();
    head();
    training();
    plan();
    outputs();
  }

  /**
   * A job from its JSON; relative paths are relative to {@code base}.
   *
   * @throws JobException naming the key at fault
   */
  public static JobSpec fromJson(JsonObject json, Path base) {
    return new JobSpec(json, Optional.of(base));
  }

  /**
   * A job from its JSON; relative paths stay as written (relative to the working directory).
   *
   * @throws JobException naming the key at fault
   */
  public static JobSpec fromJson(JsonObject json) {
    return new JobSpec(json, Optional.empty());
  }

  /**
   * Reads a job file.
   *
   * @throws JobException naming the file and the key at fault
   * @throws UncheckedIOException when it cannot be read
   */
  public static JobSpec read(Path file) {
    JsonElement parsed;
    try {
      parsed = JsonParser.parseString(Files.readString(file));
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read the job " + file + ": " + e.getMessage(), e);
    } catch (JsonParseException e) {
      throw new JobException("the job " + file + " is not valid JSON (" + PlanJson.syntaxError(e) + ")", Setting.NONE,
          "fix it there");
    }
    if (!parsed.isJsonObject()) {
      throw new JobException("the job " + file + " is not a JSON object", Setting.NONE,
          "write it as {\"model\": ..., \"data\": ..., ...}");
    }
    try {
      return new JobSpec(parsed.getAsJsonObject(), Optional.of(file.toAbsolutePath().getParent()));
    } catch (JobException e) {
      throw new JobException("the job " + file + ": " + e.problem(), e.setting(), e.fix());
    }
  }

  /** The job as JSON, with its paths as written. */
  public JsonObject toJson() {
    return json.deepCopy();
  }

  /** Writes the job as JSON with its paths made absolute, so that the file runs from anywhere. */
  public void write(Path file) {
    JsonObject out = json.deepCopy();
    for (String k : List.of("targets", "validation_targets")) {
      if (out.has(k)) {
        out.add(k, ArrayJobKeys.absolute(out.get(k), keys));
      }
    }
    for (String k : List.of("model", "data", "validation_data", "checkpoints", "resume", "history", "tensorboard",
        "curves", "export", "result")) {
      if (out.has(k) && out.get(k).isJsonArray()) {
        JsonArray a = new JsonArray();
        out.getAsJsonArray(k).forEach(p -> a.add(keys.resolve(p.getAsString()).toAbsolutePath().toString()));
        out.add(k, a);
      } else if (out.has(k)) {
        out.addProperty(k, keys.resolve(out.get(k).getAsString()).toAbsolutePath().toString());
      }
    }
    try {
      org.finetune.export.AtomicFiles.writeString(file,
          new GsonBuilder().setPrettyPrinting().create().toJson(out) + "\n");
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write the job " + file + ": " + e.getMessage(), e);
    }
  }

  /** This job with {@code key} set to {@code value} (checked as the whole job is). */
  public JobSpec with(String key, JsonElement value) {
    JsonObject o = json.deepCopy();
    o.add(key, value);
    return new JobSpec(o, base);
  }

  /** The model to fine-tune, when the job names it. */
  public Optional<Path> model() {
    return keys.path("model");
  }

  /** {@code image-classification}, {@code video-classification} or {@code causal-lm}. */
  public String task() {
    return json.has("task") ? json.get("task").getAsString() : TASKS.get(0);
  }

  /** Where the job exports, when it does. */
  public Optional<Path> export() {
    return keys.path("export");
  }

  /** Where whoever runs the job writes its result, when it asks for one. */
  public Optional<Path> result() {
    return keys.path("result");
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof JobSpec other && json.equals(other.json) && base.equals(other.base);
  }

  @Override
  public int hashCode() {
    return json.hashCode() * 31 + base.hashCode();
  }

  @Override
  public String toString() {
    return json.toString();
  }

  /** Sets every setting of this job on {@code builder} (a builder for its model). */
  public FineTuneJob.Builder applyTo(FineTuneJob.Builder builder) {
    settings.forEach(s -> s.accept(builder));
    return builder;
  }

  private void data() {
    String task = task();
    if (!TASKS.contains(task)) {
      throw JsonKeys.bad("\"task\" is '" + task + "'", "use " + String.join(", ", TASKS));
    }
    if (!json.has("data")) {
      throw new JobException("the job has no \"data\"", Setting.DATA, task.equals("causal-lm")
          ? "give text files or folders of *.txt" : "give a folder with one sub-folder per class");
    }
    if (task.equals("arrays")) {
      new ArrayJobKeys(json, keys, base.orElse(Path.of("")), settings::add).read();
      return;
    }
    for (String k : ARRAYS_ONLY) {
      if (json.has(k)) {
        throw JsonKeys.bad("\"" + k + "\" is for the arrays task", "leave it out, or set \"task\": \"arrays\"");
      }
    }
    boolean video = task.equals("video-classification");
    if (!video && (json.has("frames") || json.has("temporal"))) {
      throw JsonKeys.bad("\"frames\" and \"temporal\" are for video-classification", "leave them out");
    }
    if (task.equals("causal-lm")) {
      for (String k : IMAGE_ONLY) {
        if (json.has(k)) {
          throw JsonKeys.bad("\"" + k + "\" applies to images, not to causal-lm", "leave it out");
        }
      }
      if (json.has("validation_data") && json.has("validation_split")) {
        throw new JobException("the job has both \"validation_data\" and \"validation_split\"", Setting.VALIDATION,
            "give one of them");
      }
      JobData text = JobData.text(keys.paths("data"), json.has("validation_data") ? keys.paths("validation_data") : List.of());
      settings.add(b -> b.data(text));
      whole("sequence_length", FineTuneJob.Builder::sequenceLength);
      return;
    }
    if (json.has("validation_data") || json.has("sequence_length")) {
      throw JsonKeys.bad("\"validation_data\" and \"sequence_length\" are for causal-lm", "leave them out");
    }
    Path root = keys.resolve(keys.string("data"));
    if (video) {
      int frames = json.has("frames") ? keys.wholeNumber("frames") : 8;
      JobData clips = JobData.clips(root, frames);
      String t = json.has("temporal") ? keys.string("temporal").toUpperCase(Locale.ROOT) : "CONV";
      if (!t.equals("CONV") && !t.equals("AVERAGE")) {
        throw JsonKeys.bad("\"temporal\" is '" + keys.string("temporal") + "'", "use conv or average");
      }
      settings.add(b -> b.data(clips).temporal(HeadSpec.Temporal.valueOf(t)));
    } else {
      JobData images = JobData.images(root);
      settings.add(b -> b.data(images));
    }
  }

  private void head() {
    if (keys.flag("new_head")) {
      settings.add(FineTuneJob.Builder::newHead);
    }
    if (json.has("features_at")) {
      String at = keys.string("features_at");
      settings.add(b -> b.featuresAt(at));
    }
    if (json.has("hidden_units")) {
      int units = keys.wholeNumber("hidden_units");
      double dropout = json.has("dropout") ? keys.number("dropout") : 0;
      settings.add(b -> b.headHidden(units, dropout));
    } else if (json.has("dropout")) {
      throw JsonKeys.bad("\"dropout\" applies after the hidden layer", "give \"hidden_units\" too");
    }
    if (json.has("preprocess")) {
      ImageOps.Preprocess p = keys.parse("preprocess", () -> ImageOps.Preprocess.byName(keys.string("preprocess")));
      settings.add(b -> b.preprocess(p));
    }
    if (json.has("image_size")) {
      JsonElement e = json.get("image_size");
      if (!e.isJsonArray() || e.getAsJsonArray().size() != 2) {
        throw JsonKeys.bad("\"image_size\" is " + e, "give [height, width]");
      }
      int h = keys.positive(e.getAsJsonArray().get(0), "image_size");
      int w = keys.positive(e.getAsJsonArray().get(1), "image_size");
      settings.add(b -> b.imageSize(h, w));
    }
    boolean flip = keys.flag("flip");
    double zoom = json.has("zoom") ? keys.number("zoom") : 0;
    double brightness = json.has("brightness") ? keys.number("brightness") : 0;
    boolean cache = !json.has("feature_cache") || keys.flag("feature_cache");
    if (json.has("flip") || json.has("zoom") || json.has("brightness") || json.has("feature_cache")) {
      settings.add(b -> b.flip(flip).zoom(zoom).brightness(brightness).featureCache(cache));
    }
  }

  private void training() {
    if (json.has("seed")) {
      long seed = keys.longNumber("seed");
      settings.add(b -> b.seed(seed));
    }
    if (json.has("strict")) {
      boolean strict = keys.flag("strict");
      settings.add(b -> b.strict(strict));
    }
    whole("batch_size", FineTuneJob.Builder::batchSize);
    whole("epochs", FineTuneJob.Builder::epochs);
    if (json.has("validation_split")) {
      double split = keys.number("validation_split");
      settings.add(b -> b.validationSplit(split));
    }
    whole("early_stopping", FineTuneJob.Builder::earlyStopping);
    whole("reduce_lr_on_plateau", FineTuneJob.Builder::reduceLrOnPlateau);
    if (json.has("on_non_finite")) {
      String policy = keys.string("on_non_finite").toUpperCase(Locale.ROOT);
      if (!policy.equals("STOP") && !policy.equals("SKIP")) {
        throw JsonKeys.bad("\"on_non_finite\" is '" + keys.string("on_non_finite") + "'", "use stop or skip");
      }
      settings.add(b -> b.onNonFinite(Fit.NonFinite.valueOf(policy)));
    }
  }

  private void plan() {
    if (json.has("plan")) {
      JsonObject p = keys.object("plan");
      org.finetune.train.TrainingPlan plan = keys.parse("plan", () -> PlanJson.fromJson(p));
      settings.add(b -> b.plan(plan));
    }
    if (json.has("lora")) {
      JsonObject o = keys.object("lora");
      org.finetune.train.LowRankSpec spec = keys.parse("lora", () -> PlanJson.lowRank(o));
      settings.add(b -> b.lowRank(spec));
    }
    if (json.has("optimizer")) {
      JsonObject o = keys.object("optimizer").deepCopy();
      if (!o.has("name")) {
        o.addProperty("name", "adam"); // the job's default optimizer, as without the key
      }
      OptimizerSpec spec = keys.parse("optimizer", () -> PlanJson.optimizer(o));
      settings.add(b -> b.optimizer(spec));
    }
    if (json.has("schedule")) {
      String s = keys.string("schedule").toUpperCase(Locale.ROOT);
      if (!List.of("CONSTANT", "COSINE", "SLANTED").contains(s)) {
        throw JsonKeys.bad("\"schedule\" is '" + keys.string("schedule") + "'", "use constant, cosine or slanted");
      }
      settings.add(b -> b.schedule(FineTuneJob.Schedule.valueOf(s)));
    }
    if (json.has("l2sp")) {
      double l2sp = keys.number("l2sp");
      settings.add(b -> b.l2sp(l2sp));
    }
    for (String k : List.of("train", "freeze")) {
      if (json.has(k)) {
        Selector s = keys.parse(k, () -> Selector.parse(keys.string(k)));
        settings.add(k.equals("train") ? b -> b.train(s) : b -> b.freeze(s));
      }
    }
    if (json.has("unfreeze_every")) {
      int every = keys.wholeNumber("unfreeze_every");
      settings.add(b -> b.unfreezeGradually(every));
    } else if (json.has("groups") || json.has("discriminative_lr")) {
      throw JsonKeys.bad("\"groups\" and \"discriminative_lr\" shape gradual unfreezing", "give \"unfreeze_every\" too");
    }
    if (json.has("discriminative_lr")) {
      double f = keys.number("discriminative_lr");
      settings.add(b -> b.discriminativeFactor(f));
    }
    if (json.has("groups")) {
      List<Selector> groups = new ArrayList<>();
      for (JsonElement g : keys.array("groups")) {
        groups.add(keys.parse("groups", () -> Selector.parse(g.getAsString())));
      }
      settings.add(b -> b.groups(groups));
    }
  }

  private void outputs() {
    if (json.has("overwrite")) {
      boolean overwrite = keys.flag("overwrite");
      settings.add(b -> b.overwrite(overwrite));
    }
    if (json.has("checkpoint_every") && !json.has("checkpoints")) {
      throw JsonKeys.bad("\"checkpoint_every\" needs \"checkpoints\"", "say where the checkpoints go");
    }
    keys.path("export").ifPresent(p -> settings.add(b -> b.exportTo(p)));
    keys.path("lora_export").ifPresent(p -> settings.add(b -> b.exportAdaptersTo(p)));
    keys.path("checkpoints").ifPresent(p -> settings.add(b -> b.checkpoints(p)));
    whole("checkpoint_every", FineTuneJob.Builder::checkpointEvery);
    keys.path("resume").ifPresent(p -> settings.add(b -> b.resume(p)));
    keys.path("history").ifPresent(p -> settings.add(b -> b.history(p)));
    keys.path("tensorboard").ifPresent(p -> settings.add(b -> b.tensorBoard(p)));
    keys.path("curves").ifPresent(p -> settings.add(b -> b.curves(p)));
    keys.path("result"); // checked here; whoever runs the job writes the result (result())
  }

  private void whole(String key, java.util.function.BiConsumer<FineTuneJob.Builder, Integer> set) {
    if (json.has(key)) {
      int v = keys.wholeNumber(key);
      settings.add(b -> set.accept(b, v));
    }
  }

}
