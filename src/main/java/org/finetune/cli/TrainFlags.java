package org.finetune.cli;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.apache.commons.cli.CommandLine;
import org.finetune.data.ImageOps;
import org.finetune.job.JobSpec;
import org.finetune.train.HeadSpec;
import org.finetune.train.OptimizerSpec;
import org.finetune.train.PlanJson;
import org.finetune.train.Selector;
import org.finetune.train.TrainingPlan;

/**
 * {@code finetune train}'s flags as a fine-tuning job: every flag is read and checked here, before
 * the model loads, into the job's JSON ({@link JobSpec}), the same form {@code --job FILE} gives.
 */
final class TrainFlags {
  private final JsonObject job = new JsonObject();

  TrainFlags(CommandLine line) {
    String task = line.getOptionValue("task", "image-classification");
    if (!List.of("image-classification", "video-classification", "causal-lm", "arrays").contains(task)) {
      throw new UsageException("--task must be image-classification, video-classification, causal-lm or arrays, got '"
          + task + "'");
    }
    job.addProperty("task", task);
    boolean video = task.equals("video-classification");
    boolean text = task.equals("causal-lm");
    boolean arrays = task.equals("arrays");
    if (!arrays) {
      for (String flag : ARRAY_FLAGS) {
        if (line.hasOption(flag)) {
          throw new UsageException("--" + flag + " is for --task arrays");
        }
      }
    }
    if (!video && (line.hasOption("frames") || line.hasOption("temporal"))) {
      throw new UsageException("--frames and --temporal are for --task video-classification");
    }
    if (line.hasOption("checkpoint-every") && !line.hasOption("checkpoints")) {
      throw new UsageException("--checkpoint-every needs --checkpoints DIR: where to write the checkpoints");
    }
    if (!line.hasOption("data")) {
      throw new UsageException(text ? "--data PATH is required: text files or folders of *.txt"
          : "--data DIR is required: a folder with one sub-folder of images per class");
    }
    if (arrays) {
      arrays(line);
    } else if (text) {
      for (String imageOnly : List.of("head", "hidden", "dropout", "features-at", "preprocess", "image-size", "flip",
          "zoom", "brightness", "no-cache")) {
        if (line.hasOption(imageOnly)) {
          throw new UsageException("--" + imageOnly + " applies to images, not to --task causal-lm");
        }
      }
      job.add("data", paths(line.getOptionValue("data")));
      if (line.hasOption("val-data")) {
        job.add("validation_data", paths(line.getOptionValue("val-data")));
      }
      if (line.hasOption("val-data") && line.hasOption("val-split")) {
        throw new UsageException("give --val-data or --val-split, not both");
      }
      whole(line, "seq-len", "tokens", "sequence_length");
    } else {
      job.addProperty("data", line.getOptionValue("data"));
      if (video) {
        int frames = (int) Flags.longValue(line, "frames", 8);
        if (frames < 2) {
          throw new UsageException("--frames must be at least 2, got " + frames);
        }
        job.addProperty("frames", frames);
        job.addProperty("temporal", temporal(line).name().toLowerCase(Locale.ROOT));
      } else if (!line.hasOption("head") && (line.hasOption("hidden") || line.hasOption("dropout")
          || line.hasOption("features-at"))) {
        throw new UsageException("--hidden, --dropout and --features-at shape a new head; add --head");
      }
      head(line);
      images(line);
    }
    training(line);
    plan(line);
    outputs(line);
  }

  private static final List<String> ARRAY_FLAGS = List.of("targets", "val-targets", "loss", "loss-weights",
      "from-logits", "no-shuffle", "head-units", "head-activation");

  private void arrays(CommandLine line) {
    if (!line.hasOption("data")) {
      throw new UsageException("--data is required: a .npz with one array per model input, a folder of INPUT.npy files, a"
          + " .npy, or a CSV table");
    }
    if (!line.hasOption("targets")) {
      throw new UsageException("--targets is required: a .npy file of targets, or the arrays (CSV columns) of --data"
          + " that hold them");
    }
    for (String imageOnly : List.of("frames", "temporal", "seq-len", "preprocess", "image-size", "flip", "zoom",
        "brightness", "no-cache")) {
      if (line.hasOption(imageOnly)) {
        throw new UsageException("--" + imageOnly + " applies to images or text, not to --task arrays");
      }
    }
    if (!line.hasOption("head") && (line.hasOption("hidden") || line.hasOption("dropout")
        || line.hasOption("features-at") || line.hasOption("head-units") || line.hasOption("head-activation"))) {
      throw new UsageException("--hidden, --dropout, --features-at, --head-units and --head-activation shape a new"
          + " head; add --head");
    }
    if (line.hasOption("val-data") && line.hasOption("val-split")) {
      throw new UsageException("give --val-data or --val-split, not both");
    }
    if (line.hasOption("val-targets") && !line.hasOption("val-data")) {
      throw new UsageException("--val-targets goes with --val-data: the validation inputs");
    }
    job.addProperty("data", line.getOptionValue("data"));
    job.addProperty("targets", line.getOptionValue("targets"));
    if (line.hasOption("val-data")) {
      job.addProperty("validation_data", line.getOptionValue("val-data"));
    }
    if (line.hasOption("val-targets")) {
      job.addProperty("validation_targets", line.getOptionValue("val-targets"));
    }
    if (line.hasOption("loss")) {
      String loss = line.getOptionValue("loss");
      if (loss.contains("=")) {
        JsonObject byOutput = new JsonObject();
        pairs("loss", loss).forEach(byOutput::addProperty);
        job.add("loss", byOutput);
      } else {
        job.addProperty("loss", loss);
      }
    }
    if (line.hasOption("loss-weights")) {
      JsonObject weights = new JsonObject();
      pairs("loss-weights", line.getOptionValue("loss-weights")).forEach((k, v) -> {
        try {
          weights.addProperty(k, Double.parseDouble(v));
        } catch (NumberFormatException e) {
          throw new UsageException("--loss-weights takes OUTPUT=NUMBER pairs, got '" + k + "=" + v + "'");
        }
      });
      job.add("loss_weights", weights);
    }
    job.addProperty("shuffle", !line.hasOption("no-shuffle"));
    job.addProperty("from_logits", line.hasOption("from-logits"));
    head(line);
    whole(line, "head-units", "outputs", "head_units");
    if (line.hasOption("head-activation")) {
      job.addProperty("head_activation", line.getOptionValue("head-activation"));
    }
  }

  /** {@code A=x,B=y} as an ordered map, or a usage error naming the flag. */
  private static java.util.Map<String, String> pairs(String flag, String text) {
    java.util.Map<String, String> out = new java.util.LinkedHashMap<>();
    for (String pair : text.split(",")) {
      int eq = pair.indexOf('=');
      if (eq <= 0 || eq == pair.length() - 1) {
        throw new UsageException("--" + flag + " takes OUTPUT=VALUE pairs joined by commas, got '" + pair + "'");
      }
      out.put(pair.substring(0, eq).strip(), pair.substring(eq + 1).strip());
    }
    return out;
  }

  /** The job these flags describe, as JSON. */
  JobSpec spec() {
    return Flags.parse(() -> JobSpec.fromJson(job));
  }

  private static JsonArray paths(String value) {
    JsonArray a = new JsonArray();
    Flags.paths(value).forEach(p -> a.add(p.toString()));
    return a;
  }

  private void whole(CommandLine line, String flag, String what, String key) {
    if (line.hasOption(flag)) {
      long v = Flags.longValue(line, flag, 0);
      if (v < 1 || v > Integer.MAX_VALUE) {
        throw new UsageException("--" + flag + " takes a number of " + what + " >= 1, got '" + line.getOptionValue(flag)
            + "'");
      }
      job.addProperty(key, v);
    }
  }

  private void head(CommandLine line) {
    if (line.hasOption("head")) {
      job.addProperty("new_head", true);
    }
    if (line.hasOption("features-at")) {
      job.addProperty("features_at", line.getOptionValue("features-at"));
    }
    if (line.hasOption("hidden")) {
      whole(line, "hidden", "units", "hidden_units");
      job.addProperty("dropout", Flags.doubleValue(line, "dropout", 0));
    } else if (line.hasOption("dropout")) {
      throw new UsageException("--dropout applies after the hidden layer; give --hidden N too");
    }
  }

  private void images(CommandLine line) {
    if (line.hasOption("preprocess")) {
      Flags.parse(() -> ImageOps.Preprocess.byName(line.getOptionValue("preprocess")));
      job.addProperty("preprocess", line.getOptionValue("preprocess"));
    }
    Flags.imageSize(line.getOptionValue("image-size")).ifPresent(s -> {
      JsonArray size = new JsonArray();
      size.add(s[0]);
      size.add(s[1]);
      job.add("image_size", size);
    });
    job.addProperty("flip", line.hasOption("flip"));
    job.addProperty("zoom", Flags.doubleValue(line, "zoom", 0));
    job.addProperty("brightness", Flags.doubleValue(line, "brightness", 0));
    job.addProperty("feature_cache", !line.hasOption("no-cache"));
  }

  private void training(CommandLine line) {
    job.addProperty("seed", Flags.longValue(line, "seed", 1234));
    job.addProperty("strict", line.hasOption("strict"));
    whole(line, "batch-size", "examples", "batch_size");
    whole(line, "epochs", "epochs", "epochs");
    if (line.hasOption("val-split")) {
      job.addProperty("validation_split", Flags.doubleValue(line, "val-split", 0));
    }
    whole(line, "early-stopping", "epochs", "early_stopping");
    whole(line, "reduce-lr", "epochs", "reduce_lr_on_plateau");
    String policy = line.getOptionValue("on-non-finite", "stop").toLowerCase(Locale.ROOT);
    if (!policy.equals("stop") && !policy.equals("skip")) {
      throw new UsageException("--on-non-finite takes stop or skip, got '" + line.getOptionValue("on-non-finite") + "'");
    }
    job.addProperty("on_non_finite", policy);
  }

  /** The plan from --plan, or its pieces from the flags (the job resolves them with the model's family). */
  private void plan(CommandLine line) {
    if (line.hasOption("plan")) {
      job.add("plan", PlanJson.toJson(planFile(line.getOptionValue("plan"))));
    }
    String optimizer = line.getOptionValue("optimizer", "adam").toLowerCase(Locale.ROOT);
    OptimizerSpec spec = Flags.parse(() -> switch (optimizer) {
      case "adam" -> new OptimizerSpec.Adam(Flags.doubleValue(line, "lr", 0.001), 0.9, 0.999, 1e-7);
      case "sgd" -> new OptimizerSpec.Sgd(Flags.doubleValue(line, "lr", 0.01), Flags.doubleValue(line, "momentum", 0.9),
          false);
      case "adamw" -> new OptimizerSpec.AdamW(Flags.doubleValue(line, "lr", 0.001), 0.9, 0.999, 1e-7, 0.004, true);
      default -> throw new UsageException("--optimizer must be adam, sgd or adamw, got '" + optimizer + "'");
    });
    job.add("optimizer", PlanJson.optimizer(spec));
    String schedule = line.getOptionValue("schedule", "constant").toLowerCase(Locale.ROOT);
    if (!List.of("constant", "cosine", "slanted").contains(schedule)) {
      throw new UsageException("--schedule must be constant, cosine or slanted, got '"
          + line.getOptionValue("schedule") + "'");
    }
    job.addProperty("schedule", schedule);
    job.addProperty("l2sp", Flags.doubleValue(line, "l2sp", 0));
    lowRank(line, job);
    if (line.hasOption("train") && line.hasOption("freeze")) {
      throw new UsageException("give --train or --freeze, not both");
    }
    for (String flag : List.of("train", "freeze")) {
      if (line.hasOption(flag)) {
        Flags.parse(() -> Selector.parse(line.getOptionValue(flag)));
        job.addProperty(flag, line.getOptionValue(flag));
      }
    }
    if (line.hasOption("unfreeze")) {
      String v = line.getOptionValue("unfreeze");
      if (!v.startsWith("gradual:")) {
        throw new UsageException("--unfreeze takes gradual:K (one more group every K epochs), got '" + v + "'");
      }
      int k;
      try {
        k = Integer.parseInt(v.substring("gradual:".length()));
      } catch (NumberFormatException e) {
        k = 0;
      }
      if (k < 1) {
        throw new UsageException("--unfreeze gradual:K needs a whole number of epochs K >= 1, got '" + v + "'");
      }
      job.addProperty("unfreeze_every", k);
      job.addProperty("discriminative_lr", Flags.doubleValue(line, "discriminative-lr",
          org.finetune.train.GradualUnfreezing.DEFAULT_FACTOR));
      if (line.hasOption("groups")) {
        String g = line.getOptionValue("groups");
        JsonArray groups = new JsonArray();
        for (String part : g.split(g.contains(";") ? ";" : ",")) {
          Flags.parse(() -> Selector.parse(part.trim()));
          groups.add(part.trim());
        }
        job.add("groups", groups);
      }
    }
  }

  /** A plan file, checked as the plan's own error messages say. */
  static TrainingPlan planFile(String file) {
    JsonElement json;
    try {
      if (Files.isDirectory(Path.of(file))) {
        throw new UsageException("--plan " + file + " is a folder; give the plan's JSON file");
      }
      json = JsonParser.parseString(Files.readString(Path.of(file)));
    } catch (IOException e) {
      throw new UsageException("cannot read the plan " + file + ": " + e.getMessage());
    } catch (com.google.gson.JsonParseException e) {
      throw new UsageException("the plan " + file + " is not valid JSON (" + PlanJson.syntaxError(e) + "); fix it there");
    }
    if (!json.isJsonObject()) {
      throw new UsageException("the plan " + file + " must be a JSON object, as the Plan line of finetune train"
          + " prints it (e.g. {\"optimizer\": {\"name\": \"adam\", \"learning_rate\": 0.001}}); got " + json);
    }
    try {
      return PlanJson.fromJson(json.getAsJsonObject());
    } catch (IllegalArgumentException e) {
      throw new UsageException("the plan " + file + " is not valid: " + e.getMessage() + "; fix it there");
    }
  }

  private void outputs(CommandLine line) {
    job.addProperty("overwrite", line.hasOption("overwrite"));
    for (String[] flagKey : new String[][] {{"out", "export"}, {"checkpoints", "checkpoints"}, {"resume", "resume"},
        {"history", "history"}, {"tensorboard", "tensorboard"}, {"curves", "curves"}, {"result", "result"}}) {
      if (line.hasOption(flagKey[0])) {
        job.addProperty(flagKey[1], line.getOptionValue(flagKey[0]));
      }
    }
    whole(line, "checkpoint-every", "batches", "checkpoint_every");
  }

  /** --temporal: how a video head joins the frames. */
  static HeadSpec.Temporal temporal(CommandLine line) {
    String t = line.getOptionValue("temporal", "conv");
    return switch (t.toLowerCase(Locale.ROOT)) {
      case "conv" -> HeadSpec.Temporal.CONV;
      case "average" -> HeadSpec.Temporal.AVERAGE;
      default -> throw new UsageException("--temporal must be conv or average, got '" + t + "'");
    };
  }

  /** {@code --lora RANK [--lora-alpha A] [--lora-targets GLOB,...]} as the job's {@code lora} object. */
  private static void lowRank(CommandLine line, JsonObject job) {
    if (!line.hasOption("lora")) {
      for (String f : List.of("lora-alpha", "lora-targets", "lora-out")) {
        if (line.hasOption(f)) {
          throw new UsageException("--" + f + " needs --lora RANK");
        }
      }
      return;
    }
    long rank = Flags.longValue(line, "lora", 0);
    if (rank < 1 || rank > Integer.MAX_VALUE) {
      throw new UsageException("--lora takes the adapters' rank, a whole number >= 1 (e.g. 8), got '"
          + line.getOptionValue("lora") + "'");
    }
    JsonObject lora = new JsonObject();
    lora.addProperty("rank", rank);
    double alpha = Flags.doubleValue(line, "lora-alpha", rank);
    if (!(alpha > 0) || Double.isInfinite(alpha)) {
      throw new UsageException("--lora-alpha must be a positive number, got '" + line.getOptionValue("lora-alpha") + "'");
    }
    lora.addProperty("alpha", alpha);
    JsonArray targets = new JsonArray();
    if (line.hasOption("lora-targets")) {
      for (String t : line.getOptionValue("lora-targets").split(",")) {
        if (t.isBlank()) {
          throw new UsageException("--lora-targets takes globs over variable names separated by commas, e.g."
              + " '*/query/kernel,*/value/kernel'");
        }
        targets.add(t.trim());
      }
    }
    lora.add("targets", targets);
    job.add("lora", lora);
    if (line.hasOption("lora-out")) {
      job.addProperty("lora_export", line.getOptionValue("lora-out"));
    }
  }
}
