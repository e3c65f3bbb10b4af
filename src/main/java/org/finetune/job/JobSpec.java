package org.finetune.job;

import com.google.gson.GsonBuilder;
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
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.function.Consumer;
import org.finetune.data.ImageOps;
import org.finetune.hint.Setting;
import org.finetune.train.Fit;
import org.finetune.train.HeadSpec;
import org.finetune.train.LossSpec;
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
 * ({@code constant}, {@code cosine} or {@code slanted}), {@code l2sp}; {@code train} or
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
      "from_logits", "shuffle", "head_units", "head_activation");
  private static final List<String> TASKS = List.of("image-classification", "video-classification", "causal-lm",
      "arrays");
  private static final List<String> ARRAYS_ONLY = List.of("targets", "validation_targets", "loss", "loss_weights",
      "from_logits", "shuffle", "head_units", "head_activation");
  private static final List<String> IMAGE_ONLY = List.of("new_head", "hidden_units", "dropout", "features_at",
      "preprocess", "image_size", "flip", "zoom", "brightness", "feature_cache");

  private final JsonObject json;
  private final Optional<Path> base;
  private final List<Consumer<FineTuneJob.Builder>> settings = new ArrayList<>();

  private JobSpec(JsonObject json, Optional<Path> base) {
    this.json = json.deepCopy();
    this.base = base.map(b -> b.toAbsolutePath().normalize());
    for (String k : json.keySet()) {
      if (!KEYS.contains(k)) {
        throw bad("unknown key \"" + k + "\"", "use one of " + String.join(", ", KEYS));
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
        out.add(k, absoluteTargets(out.get(k)));
      }
    }
    for (String k : List.of("model", "data", "validation_data", "checkpoints", "resume", "history", "tensorboard",
        "curves", "export", "result")) {
      if (out.has(k) && out.get(k).isJsonArray()) {
        JsonArray a = new JsonArray();
        out.getAsJsonArray(k).forEach(p -> a.add(resolve(p.getAsString()).toAbsolutePath().toString()));
        out.add(k, a);
      } else if (out.has(k)) {
        out.addProperty(k, resolve(out.get(k).getAsString()).toAbsolutePath().toString());
      }
    }
    try {
      org.finetune.export.AtomicFiles.writeString(file,
          new GsonBuilder().setPrettyPrinting().create().toJson(out) + "\n");
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write the job " + file + ": " + e.getMessage(), e);
    }
  }

  /** Targets with their {@code .npy} paths made absolute (array names as they are). */
  private JsonElement absoluteTargets(JsonElement e) {
    if (e.isJsonObject()) {
      JsonObject o = new JsonObject();
      e.getAsJsonObject().entrySet().forEach(x -> o.add(x.getKey(), absoluteTargets(x.getValue())));
      return o;
    }
    String text = e.getAsString();
    if (text.contains("=")) {
      List<String> pairs = new ArrayList<>();
      for (String pair : text.split(",")) {
        int eq = pair.indexOf('=');
        pairs.add(pair.substring(0, eq + 1) + absoluteTargets(new JsonPrimitive(pair.substring(eq + 1).strip()))
            .getAsString());
      }
      return new JsonPrimitive(String.join(",", pairs));
    }
    return new JsonPrimitive(text.toLowerCase(Locale.ROOT).endsWith(".npy")
        ? resolve(text).toAbsolutePath().toString() : text);
  }

  /** This job with {@code key} set to {@code value} (checked as the whole job is). */
  public JobSpec with(String key, JsonElement value) {
    JsonObject o = json.deepCopy();
    o.add(key, value);
    return new JobSpec(o, base);
  }

  /** The model to fine-tune, when the job names it. */
  public Optional<Path> model() {
    return path("model");
  }

  /** {@code image-classification}, {@code video-classification} or {@code causal-lm}. */
  public String task() {
    return json.has("task") ? json.get("task").getAsString() : TASKS.get(0);
  }

  /** Where the job exports, when it does. */
  public Optional<Path> export() {
    return path("export");
  }

  /** Where whoever runs the job writes its result, when it asks for one. */
  public Optional<Path> result() {
    return path("result");
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
      throw bad("\"task\" is '" + task + "'", "use " + String.join(", ", TASKS));
    }
    if (!json.has("data")) {
      throw new JobException("the job has no \"data\"", Setting.DATA, task.equals("causal-lm")
          ? "give text files or folders of *.txt" : "give a folder with one sub-folder per class");
    }
    if (task.equals("arrays")) {
      arrays();
      return;
    }
    for (String k : ARRAYS_ONLY) {
      if (json.has(k)) {
        throw bad("\"" + k + "\" is for the arrays task", "leave it out, or set \"task\": \"arrays\"");
      }
    }
    boolean video = task.equals("video-classification");
    if (!video && (json.has("frames") || json.has("temporal"))) {
      throw bad("\"frames\" and \"temporal\" are for video-classification", "leave them out");
    }
    if (task.equals("causal-lm")) {
      for (String k : IMAGE_ONLY) {
        if (json.has(k)) {
          throw bad("\"" + k + "\" applies to images, not to causal-lm", "leave it out");
        }
      }
      if (json.has("validation_data") && json.has("validation_split")) {
        throw new JobException("the job has both \"validation_data\" and \"validation_split\"", Setting.VALIDATION,
            "give one of them");
      }
      JobData text = JobData.text(paths("data"), json.has("validation_data") ? paths("validation_data") : List.of());
      settings.add(b -> b.data(text));
      whole("sequence_length", FineTuneJob.Builder::sequenceLength);
      return;
    }
    if (json.has("validation_data") || json.has("sequence_length")) {
      throw bad("\"validation_data\" and \"sequence_length\" are for causal-lm", "leave them out");
    }
    Path root = resolve(string("data"));
    if (video) {
      int frames = json.has("frames") ? wholeNumber("frames") : 8;
      JobData clips = JobData.clips(root, frames);
      String t = json.has("temporal") ? string("temporal").toUpperCase(Locale.ROOT) : "CONV";
      if (!t.equals("CONV") && !t.equals("AVERAGE")) {
        throw bad("\"temporal\" is '" + string("temporal") + "'", "use conv or average");
      }
      settings.add(b -> b.data(clips).temporal(HeadSpec.Temporal.valueOf(t)));
    } else {
      JobData images = JobData.images(root);
      settings.add(b -> b.data(images));
    }
  }

  /** The arrays task: inputs, targets, validation, the loss and what shapes a new head. */
  private void arrays() {
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
    JobData.Arrays data = new JobData.Arrays(resolve(string("data")), targets, Optional.empty());
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
      data = data.validatedOn(new JobData.Arrays(resolve(string("validation_data")), vt, Optional.empty()));
    } else if (json.has("validation_targets")) {
      throw bad("\"validation_targets\" needs \"validation_data\"", "give the validation inputs too");
    }
    JobData.Arrays arrays = data;
    settings.add(b -> b.data(arrays));
    if (json.has("loss") && json.get("loss").isJsonObject()) {
      for (Map.Entry<String, JsonElement> e : object("loss").entrySet()) {
        LossSpec loss = lossNamed(e.getValue(), "loss." + e.getKey());
        settings.add(b -> b.loss(e.getKey(), loss));
      }
    } else if (json.has("loss")) {
      LossSpec loss = lossNamed(json.get("loss"), "loss");
      settings.add(b -> b.loss(loss));
    }
    if (json.has("loss_weights")) {
      for (Map.Entry<String, JsonElement> e : object("loss_weights").entrySet()) {
        JsonElement w = e.getValue();
        if (!w.isJsonPrimitive() || !w.getAsJsonPrimitive().isNumber() || !(w.getAsDouble() >= 0)) {
          throw bad("\"loss_weights\" gives " + e.getKey() + " " + w, "give each output a number >= 0");
        }
        double weight = w.getAsDouble();
        settings.add(b -> b.lossWeight(e.getKey(), weight));
      }
    }
    if (json.has("shuffle")) {
      boolean shuffle = flag("shuffle");
      settings.add(b -> b.shuffle(shuffle));
    }
    if (json.has("from_logits")) {
      boolean logits = flag("from_logits");
      settings.add(b -> b.fromLogits(logits));
    }
    whole("head_units", FineTuneJob.Builder::headUnits);
    if (json.has("head_activation")) {
      String a = string("head_activation").toUpperCase(Locale.ROOT);
      if (!List.of("SOFTMAX", "SIGMOID", "LINEAR").contains(a)) {
        throw bad("\"head_activation\" is '" + string("head_activation") + "'", "use softmax, sigmoid or linear");
      }
      settings.add(b -> b.headActivation(HeadSpec.Activation.valueOf(a)));
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
        byOutput.put(o.getKey(), parse(key, () -> JobData.Targets.parse(o.getValue().getAsString(), here())));
      }
      return parse(key, () -> JobData.Targets.byOutput(byOutput));
    }
    return parse(key, () -> JobData.Targets.parse(string(key), here()));
  }

  private LossSpec lossNamed(JsonElement e, String key) {
    if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isString()) {
      throw bad("\"" + key + "\" is " + e, "give a loss by Keras's name");
    }
    LossSpec loss = parse(key, () -> LossSpec.byName(e.getAsString()));
    if (loss == LossSpec.CAUSAL_LM) {
      throw bad("\"" + key + "\" is causal_lm, the loss of the causal-lm task", "use that task for text");
    }
    return loss;
  }

  private Path here() {
    return base.orElse(Path.of(""));
  }

  private void head() {
    if (flag("new_head")) {
      settings.add(FineTuneJob.Builder::newHead);
    }
    if (json.has("features_at")) {
      String at = string("features_at");
      settings.add(b -> b.featuresAt(at));
    }
    if (json.has("hidden_units")) {
      int units = wholeNumber("hidden_units");
      double dropout = json.has("dropout") ? number("dropout") : 0;
      settings.add(b -> b.headHidden(units, dropout));
    } else if (json.has("dropout")) {
      throw bad("\"dropout\" applies after the hidden layer", "give \"hidden_units\" too");
    }
    if (json.has("preprocess")) {
      ImageOps.Preprocess p = parse("preprocess", () -> ImageOps.Preprocess.byName(string("preprocess")));
      settings.add(b -> b.preprocess(p));
    }
    if (json.has("image_size")) {
      JsonElement e = json.get("image_size");
      if (!e.isJsonArray() || e.getAsJsonArray().size() != 2) {
        throw bad("\"image_size\" is " + e, "give [height, width]");
      }
      int h = positive(e.getAsJsonArray().get(0), "image_size");
      int w = positive(e.getAsJsonArray().get(1), "image_size");
      settings.add(b -> b.imageSize(h, w));
    }
    boolean flip = flag("flip");
    double zoom = json.has("zoom") ? number("zoom") : 0;
    double brightness = json.has("brightness") ? number("brightness") : 0;
    boolean cache = !json.has("feature_cache") || flag("feature_cache");
    if (json.has("flip") || json.has("zoom") || json.has("brightness") || json.has("feature_cache")) {
      settings.add(b -> b.flip(flip).zoom(zoom).brightness(brightness).featureCache(cache));
    }
  }

  private void training() {
    if (json.has("seed")) {
      long seed = longNumber("seed");
      settings.add(b -> b.seed(seed));
    }
    if (json.has("strict")) {
      boolean strict = flag("strict");
      settings.add(b -> b.strict(strict));
    }
    whole("batch_size", FineTuneJob.Builder::batchSize);
    whole("epochs", FineTuneJob.Builder::epochs);
    if (json.has("validation_split")) {
      double split = number("validation_split");
      settings.add(b -> b.validationSplit(split));
    }
    whole("early_stopping", FineTuneJob.Builder::earlyStopping);
    whole("reduce_lr_on_plateau", FineTuneJob.Builder::reduceLrOnPlateau);
    if (json.has("on_non_finite")) {
      String policy = string("on_non_finite").toUpperCase(Locale.ROOT);
      if (!policy.equals("STOP") && !policy.equals("SKIP")) {
        throw bad("\"on_non_finite\" is '" + string("on_non_finite") + "'", "use stop or skip");
      }
      settings.add(b -> b.onNonFinite(Fit.NonFinite.valueOf(policy)));
    }
  }

  private void plan() {
    if (json.has("plan")) {
      JsonObject p = object("plan");
      org.finetune.train.TrainingPlan plan = parse("plan", () -> PlanJson.fromJson(p));
      settings.add(b -> b.plan(plan));
    }
    if (json.has("optimizer")) {
      JsonObject o = object("optimizer").deepCopy();
      if (!o.has("name")) {
        o.addProperty("name", "adam"); // the job's default optimizer, as without the key
      }
      OptimizerSpec spec = parse("optimizer", () -> PlanJson.optimizer(o));
      settings.add(b -> b.optimizer(spec));
    }
    if (json.has("schedule")) {
      String s = string("schedule").toUpperCase(Locale.ROOT);
      if (!List.of("CONSTANT", "COSINE", "SLANTED").contains(s)) {
        throw bad("\"schedule\" is '" + string("schedule") + "'", "use constant, cosine or slanted");
      }
      settings.add(b -> b.schedule(FineTuneJob.Schedule.valueOf(s)));
    }
    if (json.has("l2sp")) {
      double l2sp = number("l2sp");
      settings.add(b -> b.l2sp(l2sp));
    }
    for (String k : List.of("train", "freeze")) {
      if (json.has(k)) {
        Selector s = parse(k, () -> Selector.parse(string(k)));
        settings.add(k.equals("train") ? b -> b.train(s) : b -> b.freeze(s));
      }
    }
    if (json.has("unfreeze_every")) {
      int every = wholeNumber("unfreeze_every");
      settings.add(b -> b.unfreezeGradually(every));
    } else if (json.has("groups") || json.has("discriminative_lr")) {
      throw bad("\"groups\" and \"discriminative_lr\" shape gradual unfreezing", "give \"unfreeze_every\" too");
    }
    if (json.has("discriminative_lr")) {
      double f = number("discriminative_lr");
      settings.add(b -> b.discriminativeFactor(f));
    }
    if (json.has("groups")) {
      List<Selector> groups = new ArrayList<>();
      for (JsonElement g : array("groups")) {
        groups.add(parse("groups", () -> Selector.parse(g.getAsString())));
      }
      settings.add(b -> b.groups(groups));
    }
  }

  private void outputs() {
    if (json.has("overwrite")) {
      boolean overwrite = flag("overwrite");
      settings.add(b -> b.overwrite(overwrite));
    }
    if (json.has("checkpoint_every") && !json.has("checkpoints")) {
      throw bad("\"checkpoint_every\" needs \"checkpoints\"", "say where the checkpoints go");
    }
    path("export").ifPresent(p -> settings.add(b -> b.exportTo(p)));
    path("checkpoints").ifPresent(p -> settings.add(b -> b.checkpoints(p)));
    whole("checkpoint_every", FineTuneJob.Builder::checkpointEvery);
    path("resume").ifPresent(p -> settings.add(b -> b.resume(p)));
    path("history").ifPresent(p -> settings.add(b -> b.history(p)));
    path("tensorboard").ifPresent(p -> settings.add(b -> b.tensorBoard(p)));
    path("curves").ifPresent(p -> settings.add(b -> b.curves(p)));
    path("result"); // checked here; whoever runs the job writes the result (result())
  }

  private void whole(String key, java.util.function.BiConsumer<FineTuneJob.Builder, Integer> set) {
    if (json.has(key)) {
      int v = wholeNumber(key);
      settings.add(b -> set.accept(b, v));
    }
  }

  private Optional<Path> path(String key) {
    return json.has(key) ? Optional.of(resolve(string(key))) : Optional.empty();
  }

  private List<Path> paths(String key) {
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

  private Path resolve(String p) {
    Path path = Path.of(p);
    return path.isAbsolute() || base.isEmpty() ? path : base.get().resolve(path).normalize();
  }

  private String string(String key) {
    JsonElement e = json.get(key);
    if (e == null || !e.isJsonPrimitive() || !e.getAsJsonPrimitive().isString()) {
      throw bad("\"" + key + "\" is " + e, "give a string");
    }
    return e.getAsString();
  }

  private boolean flag(String key) {
    JsonElement e = json.get(key);
    if (e == null) {
      return false;
    }
    if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isBoolean()) {
      throw bad("\"" + key + "\" is " + e, "give true or false");
    }
    return e.getAsBoolean();
  }

  private double number(String key) {
    JsonElement e = json.get(key);
    if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isNumber()) {
      throw bad("\"" + key + "\" is " + e, "give a number");
    }
    return e.getAsDouble();
  }

  private long longNumber(String key) {
    double d = number(key);
    if (d != Math.rint(d) || Math.abs(d) > 1L << 53) {
      throw bad("\"" + key + "\" is " + json.get(key), "give a whole number");
    }
    return (long) d;
  }

  private int wholeNumber(String key) {
    return positive(json.get(key), key);
  }

  private int positive(JsonElement e, String key) {
    if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isNumber() || e.getAsDouble() != Math.rint(e.getAsDouble())
        || e.getAsDouble() < 1 || e.getAsDouble() > Integer.MAX_VALUE) {
      throw bad("\"" + key + "\" is " + e, "give a whole number >= 1");
    }
    return e.getAsInt();
  }

  private JsonObject object(String key) {
    JsonElement e = json.get(key);
    if (!e.isJsonObject()) {
      throw bad("\"" + key + "\" is " + e, "give a JSON object");
    }
    return e.getAsJsonObject();
  }

  private JsonArray array(String key) {
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

  private <T> T parse(String key, java.util.function.Supplier<T> read) {
    try {
      return read.get();
    } catch (JobException e) {
      throw e;
    } catch (IllegalArgumentException | IllegalStateException e) {
      throw bad("\"" + key + "\": " + e.getMessage(), "");
    }
  }

  private static JobException bad(String problem, String fix) {
    return new JobException(problem, Setting.NONE, fix);
  }
}
