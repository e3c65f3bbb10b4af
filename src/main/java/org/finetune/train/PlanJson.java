package org.finetune.train;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonNull;
import com.google.gson.JsonObject;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;

/**
 * A {@link TrainingPlan} as JSON and back: the plan files the CLI reads, the plan a checkpoint
 * keeps, and the plan an export's provenance records. Keys follow Keras's spelling
 * ({@code learning_rate}, {@code beta_1}); selectors use the command line's syntax.
 */
public final class PlanJson {
  private PlanJson() {}

  public static JsonObject toJson(TrainingPlan plan) {
    JsonObject o = new JsonObject();
    o.addProperty("signature", plan.signature());
    o.add("output", plan.output().<JsonElement>map(com.google.gson.JsonPrimitive::new).orElse(JsonNull.INSTANCE));
    if (plan.outputs().isEmpty()) {
      o.addProperty("loss", plan.loss().kerasName());
      if (plan.fromLogits()) {
        o.addProperty("from_logits", true);
      }
    }
    o.add("optimizer", optimizer(plan.optimizer()));
    JsonArray stages = new JsonArray();
    for (Stage s : plan.stages()) {
      JsonArray groups = new JsonArray();
      for (Stage.Group g : s.groups()) {
        JsonObject go = new JsonObject();
        go.addProperty("select", g.selector().text());
        go.addProperty("lr_factor", g.rateFactor());
        groups.add(go);
      }
      JsonObject so = new JsonObject();
      so.add("groups", groups);
      stages.add(so);
    }
    o.add("stages", stages);
    o.add("schedule", schedule(plan.schedule()));
    if (plan.clipGlobalNorm().isPresent()) {
      o.addProperty("clip_global_norm", plan.clipGlobalNorm().getAsDouble());
    } else {
      o.add("clip_global_norm", JsonNull.INSTANCE);
    }
    o.addProperty("l2sp", plan.l2sp());
    o.add("head", plan.head().<JsonElement>map(PlanJson::head).orElse(JsonNull.INSTANCE));
    plan.lowRank().ifPresent(l -> o.add("lora", lowRank(l)));
    if (!plan.outputs().isEmpty()) {
      JsonArray outputs = new JsonArray();
      for (OutputLoss ol : plan.outputs()) {
        JsonObject oo = new JsonObject();
        oo.addProperty("output", ol.output());
        oo.addProperty("loss", ol.loss().kerasName());
        oo.addProperty("weight", ol.weight());
        if (ol.fromLogits()) {
          oo.addProperty("from_logits", true);
        }
        outputs.add(oo);
      }
      o.add("outputs", outputs);
    }
    return o;
  }

  /**
   * Reads a plan; absent keys take the builder's defaults. Unknown keys are errors (listing the
   * known ones), so a misspelt key is never silently ignored.
   *
   * @throws IllegalArgumentException naming the key at fault
   */
  public static TrainingPlan fromJson(JsonObject o) {
    TrainingPlan.Builder b = TrainingPlan.builder();
    try {
      known(o, "the plan", "signature", "output", "loss", "optimizer", "stages", "schedule", "clip_global_norm", "l2sp",
          "head", "outputs", "from_logits", "lora");
      if (has(o, "signature")) {
        b.signature(o.get("signature").getAsString());
      }
      if (has(o, "output")) {
        b.output(o.get("output").getAsString());
      }
      if (has(o, "loss")) {
        b.loss(LossSpec.byName(o.get("loss").getAsString()));
      }
      if (has(o, "optimizer")) {
        b.optimizer(optimizer(object(o, "optimizer")));
      }
      if (has(o, "stages")) {
        List<Stage> stages = new ArrayList<>();
        for (JsonElement e : array(o, "stages")) {
          List<Stage.Group> groups = new ArrayList<>();
          JsonArray list;
          if (e.isJsonObject()) {
            known(e.getAsJsonObject(), "a stage", "groups");
            list = array(e.getAsJsonObject(), "groups");
          } else if (e.isJsonArray()) {
            list = e.getAsJsonArray();
          } else {
            throw new IllegalArgumentException("each of \"stages\" is an array of groups or {\"groups\": [...]}, got "
                + e);
          }
          for (JsonElement g : list) {
            if (g.isJsonPrimitive()) {
              groups.add(new Stage.Group(Selector.parse(g.getAsString()), 1.0));
            } else {
              JsonObject go = g.getAsJsonObject();
              known(go, "a group", "select", "lr_factor");
              groups.add(new Stage.Group(Selector.parse(go.get("select").getAsString()),
                  has(go, "lr_factor") ? go.get("lr_factor").getAsDouble() : 1.0));
            }
          }
          stages.add(new Stage(groups));
        }
        b.stages(stages);
      }
      if (has(o, "schedule")) {
        b.schedule(schedule(object(o, "schedule")));
      }
      if (has(o, "clip_global_norm")) {
        b.clipGlobalNorm(o.get("clip_global_norm").getAsDouble());
      }
      if (has(o, "l2sp")) {
        b.l2sp(o.get("l2sp").getAsDouble());
      }
      if (has(o, "head")) {
        b.head(head(object(o, "head")));
      }
      if (has(o, "lora")) {
        b.lowRank(lowRank(object(o, "lora")));
      }
      if (has(o, "from_logits")) {
        b.fromLogits(o.get("from_logits").getAsBoolean());
      }
      if (has(o, "outputs")) {
        for (JsonElement e : array(o, "outputs")) {
          JsonObject oo = e.getAsJsonObject();
          known(oo, "an output", "output", "loss", "weight", "from_logits");
          b.output(new OutputLoss(oo.get("output").getAsString(), LossSpec.byName(oo.get("loss").getAsString()),
              has(oo, "weight") ? oo.get("weight").getAsDouble() : 1.0,
              has(oo, "from_logits") && oo.get("from_logits").getAsBoolean()));
        }
      }
    } catch (IllegalStateException | ClassCastException | NullPointerException | UnsupportedOperationException
        | NumberFormatException e) {
      throw new IllegalArgumentException("the plan is malformed: " + e.getMessage(), e);
    }
    return b.build();
  }

  /** Refuses keys other than {@code keys}, listing those. */
  private static void known(JsonObject o, String where, String... keys) {
    List<String> allowed = List.of(keys);
    for (String k : o.keySet()) {
      if (!allowed.contains(k)) {
        throw new IllegalArgumentException("unknown key '" + k + "' in " + where + " (known: " + String.join(", ", keys)
            + ")");
      }
    }
  }

  private static JsonObject object(JsonObject o, String key) {
    if (!o.get(key).isJsonObject()) {
      throw new IllegalArgumentException("\"" + key + "\" must be a JSON object, got " + o.get(key));
    }
    return o.getAsJsonObject(key);
  }

  private static JsonArray array(JsonObject o, String key) {
    if (!o.get(key).isJsonArray()) {
      throw new IllegalArgumentException("\"" + key + "\" must be a JSON array, got " + o.get(key));
    }
    return o.getAsJsonArray(key);
  }

  /** An optimizer as the plan writes it: {@code {"name": "adam", "learning_rate": ..., ...}}. */
  public static JsonObject optimizer(OptimizerSpec spec) {
    JsonObject o = new JsonObject();
    if (spec instanceof OptimizerSpec.Sgd s) {
      o.addProperty("name", "sgd");
      o.addProperty("learning_rate", s.learningRate());
      o.addProperty("momentum", s.momentum());
      o.addProperty("nesterov", s.nesterov());
    } else if (spec instanceof OptimizerSpec.Adam a) {
      o.addProperty("name", "adam");
      o.addProperty("learning_rate", a.learningRate());
      o.addProperty("beta_1", a.beta1());
      o.addProperty("beta_2", a.beta2());
      o.addProperty("epsilon", a.epsilon());
    } else if (spec instanceof OptimizerSpec.AdamW a) {
      o.addProperty("name", "adamw");
      o.addProperty("learning_rate", a.learningRate());
      o.addProperty("beta_1", a.beta1());
      o.addProperty("beta_2", a.beta2());
      o.addProperty("epsilon", a.epsilon());
      o.addProperty("weight_decay", a.weightDecay());
      o.addProperty("exclude_biases_and_norms", a.excludeBiasesAndNorms());
    }
    return o;
  }

  /**
   * Reads an optimizer object; absent keys take Keras's defaults for that optimizer.
   *
   * @throws IllegalArgumentException naming the key at fault
   */
  public static OptimizerSpec optimizer(JsonObject o) {
    if (!has(o, "name")) {
      throw new IllegalArgumentException("\"optimizer\" needs a \"name\": sgd, adam or adamw");
    }
    String name = o.get("name").getAsString().toLowerCase(Locale.ROOT);
    switch (name) {
      case "sgd":
        known(o, "the sgd optimizer", "name", "learning_rate", "momentum", "nesterov");
        break;
      case "adam":
        known(o, "the adam optimizer", "name", "learning_rate", "beta_1", "beta_2", "epsilon");
        break;
      case "adamw":
        known(o, "the adamw optimizer", "name", "learning_rate", "beta_1", "beta_2", "epsilon", "weight_decay",
            "exclude_biases_and_norms");
        break;
      default:
        break;
    }
    switch (name) {
      case "sgd": {
        OptimizerSpec.Sgd d = OptimizerSpec.Sgd.defaults();
        return new OptimizerSpec.Sgd(num(o, "learning_rate", d.learningRate()), num(o, "momentum", d.momentum()),
            has(o, "nesterov") ? o.get("nesterov").getAsBoolean() : d.nesterov());
      }
      case "adam": {
        OptimizerSpec.Adam d = OptimizerSpec.Adam.defaults();
        return new OptimizerSpec.Adam(num(o, "learning_rate", d.learningRate()), num(o, "beta_1", d.beta1()),
            num(o, "beta_2", d.beta2()), num(o, "epsilon", d.epsilon()));
      }
      case "adamw": {
        OptimizerSpec.AdamW d = OptimizerSpec.AdamW.defaults();
        return new OptimizerSpec.AdamW(num(o, "learning_rate", d.learningRate()), num(o, "beta_1", d.beta1()),
            num(o, "beta_2", d.beta2()), num(o, "epsilon", d.epsilon()), num(o, "weight_decay", d.weightDecay()),
            has(o, "exclude_biases_and_norms") ? o.get("exclude_biases_and_norms").getAsBoolean()
                : d.excludeBiasesAndNorms());
      }
      default:
        throw new IllegalArgumentException("unknown optimizer '" + name + "'; use sgd, adam or adamw");
    }
  }

  static JsonObject schedule(LearningRateSchedule s) {
    JsonObject o = new JsonObject();
    if (s instanceof LearningRateSchedule.Constant c) {
      o.addProperty("name", "constant");
      o.addProperty("rate", c.rate());
    } else if (s instanceof LearningRateSchedule.StepDecay d) {
      o.addProperty("name", "step");
      o.addProperty("rate", d.rate());
      o.addProperty("every", d.every());
      o.addProperty("factor", d.factor());
    } else if (s instanceof LearningRateSchedule.CosineWarmup c) {
      o.addProperty("name", "cosine_warmup");
      o.addProperty("initial", c.initial());
      o.addProperty("target", c.target());
      o.addProperty("warmup_steps", c.warmupSteps());
      o.addProperty("decay_steps", c.decaySteps());
      o.addProperty("alpha", c.alpha());
    } else if (s instanceof LearningRateSchedule.SlantedTriangular t) {
      o.addProperty("name", "slanted_triangular");
      o.addProperty("max", t.max());
      o.addProperty("total_steps", t.totalSteps());
      o.addProperty("cut_fraction", t.cutFraction());
      o.addProperty("ratio", t.ratio());
    }
    return o;
  }

  static LearningRateSchedule schedule(JsonObject o) {
    if (!has(o, "name")) {
      throw new IllegalArgumentException("\"schedule\" needs a \"name\": constant, step, cosine_warmup or"
          + " slanted_triangular");
    }
    String name = o.get("name").getAsString();
    switch (name) {
      case "constant" -> known(o, "the constant schedule", "name", "rate");
      case "step" -> known(o, "the step schedule", "name", "rate", "every", "factor");
      case "cosine_warmup" -> known(o, "the cosine_warmup schedule", "name", "initial", "target", "warmup_steps",
          "decay_steps", "alpha");
      case "slanted_triangular" -> known(o, "the slanted_triangular schedule", "name", "max", "total_steps",
          "cut_fraction", "ratio");
      default -> { }
    }
    switch (name) {
      case "constant":
        return new LearningRateSchedule.Constant(o.get("rate").getAsDouble());
      case "step":
        return new LearningRateSchedule.StepDecay(o.get("rate").getAsDouble(), o.get("every").getAsLong(),
            o.get("factor").getAsDouble());
      case "cosine_warmup":
        return new LearningRateSchedule.CosineWarmup(o.get("initial").getAsDouble(), o.get("target").getAsDouble(),
            o.get("warmup_steps").getAsLong(), o.get("decay_steps").getAsLong(), num(o, "alpha", 0));
      case "slanted_triangular":
        return new LearningRateSchedule.SlantedTriangular(o.get("max").getAsDouble(), o.get("total_steps").getAsLong(),
            num(o, "cut_fraction", 0.1), num(o, "ratio", 32));
      default:
        throw new IllegalArgumentException("unknown schedule '" + name
            + "'; use constant, step, cosine_warmup or slanted_triangular");
    }
  }

  /** Low-rank adapters as plan files write them: {@code {"rank", "alpha", "targets": [globs], "seed"}}. */
  public static JsonObject lowRank(LowRankSpec l) {
    JsonObject lo = new JsonObject();
    lo.addProperty("rank", l.rank());
    lo.addProperty("alpha", l.alpha());
    JsonArray targets = new JsonArray();
    l.targets().forEach(targets::add);
    lo.add("targets", targets);
    lo.addProperty("seed", l.seed());
    return lo;
  }

  /** Reads {@link #lowRank(LowRankSpec)}'s form; only {@code rank} is required (alpha defaults to it). */
  public static LowRankSpec lowRank(JsonObject lo) {
    known(lo, "lora", "rank", "alpha", "targets", "seed");
    if (!has(lo, "rank")) {
      throw new IllegalArgumentException("\"lora\" needs a \"rank\"");
    }
    int rank = lo.get("rank").getAsInt();
    List<String> targets = new ArrayList<>();
    if (has(lo, "targets")) {
      array(lo, "targets").forEach(t -> targets.add(t.getAsString()));
    }
    return new LowRankSpec(rank, has(lo, "alpha") ? lo.get("alpha").getAsDouble() : rank, targets,
        has(lo, "seed") ? lo.get("seed").getAsLong() : LowRankSpec.DEFAULT_SEED);
  }

  static JsonObject head(HeadSpec h) {
    JsonObject o = new JsonObject();
    o.add("at", h.at().<JsonElement>map(com.google.gson.JsonPrimitive::new).orElse(JsonNull.INSTANCE));
    o.addProperty("pooling", h.pooling().name().toLowerCase(Locale.ROOT));
    o.addProperty("hidden", h.hiddenUnits());
    o.addProperty("dropout", h.dropout());
    o.addProperty("classes", h.classes());
    o.addProperty("activation", h.activation().kerasName());
    o.addProperty("seed", h.seed());
    if (h.frames() > 0) {
      o.addProperty("frames", h.frames());
      o.addProperty("temporal", h.temporal().name().toLowerCase(Locale.ROOT));
    }
    return o;
  }

  static HeadSpec head(JsonObject o) {
    known(o, "the head", "at", "pooling", "hidden", "dropout", "classes", "activation", "seed", "frames",
        "temporal");
    HeadSpec.Activation activation = HeadSpec.Activation.SOFTMAX;
    if (has(o, "activation")) {
      String a = o.get("activation").getAsString();
      activation = java.util.Arrays.stream(HeadSpec.Activation.values()).filter(x -> x.kerasName().equals(a))
          .findFirst().orElseThrow(() -> new IllegalArgumentException("unknown head activation '" + a
              + "'; use softmax, sigmoid or linear"));
    }
    return new HeadSpec(has(o, "at") ? Optional.of(o.get("at").getAsString()) : Optional.empty(),
        has(o, "pooling") ? HeadSpec.Pooling.valueOf(o.get("pooling").getAsString().toUpperCase(Locale.ROOT))
            : HeadSpec.Pooling.AVERAGE,
        has(o, "hidden") ? o.get("hidden").getAsInt() : 0, num(o, "dropout", 0), o.get("classes").getAsInt(),
        activation, has(o, "seed") ? o.get("seed").getAsLong() : HeadSpec.DEFAULT_SEED,
        has(o, "frames") ? o.get("frames").getAsInt() : 0, temporal(o));
  }

  private static HeadSpec.Temporal temporal(JsonObject o) {
    if (!has(o, "temporal")) {
      return HeadSpec.Temporal.AVERAGE;
    }
    String t = o.get("temporal").getAsString();
    return java.util.Arrays.stream(HeadSpec.Temporal.values()).filter(x -> x.name().equalsIgnoreCase(t)).findFirst()
        .orElseThrow(() -> new IllegalArgumentException("unknown temporal head '" + t + "'; use average or conv"));
  }

  /**
   * Gson's complaint about a file that is not JSON, as one line for a person ("malformed JSON at
   * line 1 column 5"): without the exception class, the reader's JSON path and the advice to read
   * leniently that Gson appends.
   */
  public static String syntaxError(com.google.gson.JsonParseException e) {
    Throwable t = e.getCause() != null && e.getCause().getMessage() != null ? e.getCause() : e;
    String m = t.getMessage() == null ? t.getClass().getSimpleName() : t.getMessage().lines().findFirst().orElse("");
    return m.replace("Use JsonReader.setStrictness(Strictness.LENIENT) to accept malformed JSON", "malformed JSON")
        .replaceAll(" path \\S*$", "");
  }

  private static boolean has(JsonObject o, String key) {
    return o.has(key) && !o.get(key).isJsonNull();
  }

  private static double num(JsonObject o, String key, double fallback) {
    return has(o, key) ? o.get(key).getAsDouble() : fallback;
  }
}
