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
    o.addProperty("loss", plan.loss().kerasName());
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
    return o;
  }

  /**
   * Reads a plan; absent keys take the builder's defaults.
   *
   * @throws IllegalArgumentException naming the key at fault
   */
  public static TrainingPlan fromJson(JsonObject o) {
    TrainingPlan.Builder b = TrainingPlan.builder();
    try {
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
        b.optimizer(optimizer(o.getAsJsonObject("optimizer")));
      }
      if (has(o, "stages")) {
        List<Stage> stages = new ArrayList<>();
        for (JsonElement e : o.getAsJsonArray("stages")) {
          List<Stage.Group> groups = new ArrayList<>();
          JsonArray list = e.isJsonObject() ? e.getAsJsonObject().getAsJsonArray("groups") : e.getAsJsonArray();
          for (JsonElement g : list) {
            if (g.isJsonPrimitive()) {
              groups.add(new Stage.Group(Selector.parse(g.getAsString()), 1.0));
            } else {
              JsonObject go = g.getAsJsonObject();
              groups.add(new Stage.Group(Selector.parse(go.get("select").getAsString()),
                  has(go, "lr_factor") ? go.get("lr_factor").getAsDouble() : 1.0));
            }
          }
          stages.add(new Stage(groups));
        }
        b.stages(stages);
      }
      if (has(o, "schedule")) {
        b.schedule(schedule(o.getAsJsonObject("schedule")));
      }
      if (has(o, "clip_global_norm")) {
        b.clipGlobalNorm(o.get("clip_global_norm").getAsDouble());
      }
      if (has(o, "l2sp")) {
        b.l2sp(o.get("l2sp").getAsDouble());
      }
      if (has(o, "head")) {
        b.head(head(o.getAsJsonObject("head")));
      }
    } catch (IllegalStateException | ClassCastException | NullPointerException | UnsupportedOperationException e) {
      throw new IllegalArgumentException("the plan is malformed: " + e.getMessage(), e);
    }
    return b.build();
  }

  static JsonObject optimizer(OptimizerSpec spec) {
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

  static OptimizerSpec optimizer(JsonObject o) {
    String name = o.get("name").getAsString().toLowerCase(Locale.ROOT);
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
    String name = o.get("name").getAsString();
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

  private static boolean has(JsonObject o, String key) {
    return o.has(key) && !o.get(key).isJsonNull();
  }

  private static double num(JsonObject o, String key, double fallback) {
    return has(o, key) ? o.get(key).getAsDouble() : fallback;
  }
}
