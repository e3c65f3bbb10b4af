package org.finetune.cli;

import com.google.gson.JsonElement;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.Consumer;
import org.apache.commons.cli.CommandLine;
import org.finetune.data.ImageOps;
import org.finetune.job.FineTuneJob;
import org.finetune.job.JobData;
import org.finetune.train.Fit;
import org.finetune.train.HeadSpec;
import org.finetune.train.OptimizerSpec;
import org.finetune.train.PlanJson;
import org.finetune.train.Selector;
import org.finetune.train.TrainingPlan;

/**
 * {@code finetune train}'s flags as a fine-tuning job: every flag is read and checked here, before
 * the model loads, into settings of {@link FineTuneJob.Builder} applied once it has.
 */
final class TrainFlags {
  private final List<Consumer<FineTuneJob.Builder>> settings = new ArrayList<>();
  private final JobData data;

  TrainFlags(CommandLine line) {
    String task = line.getOptionValue("task", "image-classification");
    if (!List.of("image-classification", "video-classification", "causal-lm").contains(task)) {
      throw new UsageException("--task must be image-classification, video-classification or causal-lm, got '" + task
          + "'");
    }
    boolean video = task.equals("video-classification");
    boolean text = task.equals("causal-lm");
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
    if (text) {
      for (String imageOnly : List.of("head", "hidden", "dropout", "features-at", "preprocess", "image-size", "flip",
          "zoom", "brightness", "no-cache")) {
        if (line.hasOption(imageOnly)) {
          throw new UsageException("--" + imageOnly + " applies to images, not to --task causal-lm");
        }
      }
      List<Path> validation = line.hasOption("val-data") ? Flags.paths(line.getOptionValue("val-data")) : List.of();
      data = JobData.text(Flags.paths(line.getOptionValue("data")), validation);
      if (line.hasOption("val-data") && line.hasOption("val-split")) {
        throw new UsageException("give --val-data or --val-split, not both");
      }
      whole(line, "seq-len", "tokens", FineTuneJob.Builder::sequenceLength);
    } else {
      Path root = Path.of(line.getOptionValue("data"));
      if (video) {
        int frames = (int) Flags.longValue(line, "frames", 8);
        if (frames < 2) {
          throw new UsageException("--frames must be at least 2, got " + frames);
        }
        data = JobData.clips(root, frames);
        HeadSpec.Temporal temporal = temporal(line);
        settings.add(b -> b.temporal(temporal));
      } else {
        data = JobData.images(root);
        if (!line.hasOption("head") && (line.hasOption("hidden") || line.hasOption("dropout")
            || line.hasOption("features-at"))) {
          throw new UsageException("--hidden, --dropout and --features-at shape a new head; add --head");
        }
      }
      head(line);
      images(line);
    }
    settings.add(b -> b.data(data));
    training(line);
    plan(line);
    outputs(line);
  }

  /** The job these flags describe, on {@code builder}'s model. */
  FineTuneJob job(FineTuneJob.Builder builder) {
    settings.forEach(s -> s.accept(builder));
    return Flags.parse(builder::build);
  }

  private void whole(CommandLine line, String flag, String what,
      java.util.function.BiConsumer<FineTuneJob.Builder, Integer> set) {
    if (line.hasOption(flag)) {
      long v = Flags.longValue(line, flag, 0);
      if (v < 1 || v > Integer.MAX_VALUE) {
        throw new UsageException("--" + flag + " takes a number of " + what + " >= 1, got '" + line.getOptionValue(flag)
            + "'");
      }
      settings.add(b -> set.accept(b, (int) v));
    }
  }

  private void head(CommandLine line) {
    if (line.hasOption("head")) {
      settings.add(FineTuneJob.Builder::newHead);
    }
    if (line.hasOption("features-at")) {
      String at = line.getOptionValue("features-at");
      settings.add(b -> b.featuresAt(at));
    }
    if (line.hasOption("hidden")) {
      int units = (int) Flags.longValue(line, "hidden", 0);
      double dropout = Flags.doubleValue(line, "dropout", 0);
      settings.add(b -> b.headHidden(units, dropout));
    } else if (line.hasOption("dropout")) {
      throw new UsageException("--dropout applies after the hidden layer; give --hidden N too");
    }
  }

  private void images(CommandLine line) {
    if (line.hasOption("preprocess")) {
      ImageOps.Preprocess p = Flags.parse(() -> ImageOps.Preprocess.byName(line.getOptionValue("preprocess")));
      settings.add(b -> b.preprocess(p));
    }
    Flags.imageSize(line.getOptionValue("image-size")).ifPresent(s -> settings.add(b -> b.imageSize(s[0], s[1])));
    boolean flip = line.hasOption("flip");
    double zoom = Flags.doubleValue(line, "zoom", 0);
    double brightness = Flags.doubleValue(line, "brightness", 0);
    boolean cache = !line.hasOption("no-cache");
    settings.add(b -> b.flip(flip).zoom(zoom).brightness(brightness).featureCache(cache));
  }

  private void training(CommandLine line) {
    long seed = Flags.longValue(line, "seed", 1234);
    boolean strict = line.hasOption("strict");
    settings.add(b -> b.seed(seed).strict(strict));
    whole(line, "batch-size", "examples", FineTuneJob.Builder::batchSize);
    whole(line, "epochs", "epochs", FineTuneJob.Builder::epochs);
    if (line.hasOption("val-split")) {
      double split = Flags.doubleValue(line, "val-split", 0);
      settings.add(b -> b.validationSplit(split));
    }
    whole(line, "early-stopping", "epochs", FineTuneJob.Builder::earlyStopping);
    whole(line, "reduce-lr", "epochs", FineTuneJob.Builder::reduceLrOnPlateau);
    String policy = line.getOptionValue("on-non-finite", "stop").toUpperCase(Locale.ROOT);
    if (!policy.equals("STOP") && !policy.equals("SKIP")) {
      throw new UsageException("--on-non-finite takes stop or skip, got '" + line.getOptionValue("on-non-finite") + "'");
    }
    settings.add(b -> b.onNonFinite(Fit.NonFinite.valueOf(policy)));
  }

  /** The plan from --plan, or its pieces from the flags (the job resolves them with the model's family). */
  private void plan(CommandLine line) {
    if (line.hasOption("plan")) {
      TrainingPlan p = planFile(line.getOptionValue("plan"));
      settings.add(b -> b.plan(p));
    }
    String optimizer = line.getOptionValue("optimizer", "adam").toLowerCase(Locale.ROOT);
    OptimizerSpec spec = Flags.parse(() -> switch (optimizer) {
      case "adam" -> new OptimizerSpec.Adam(Flags.doubleValue(line, "lr", 0.001), 0.9, 0.999, 1e-7);
      case "sgd" -> new OptimizerSpec.Sgd(Flags.doubleValue(line, "lr", 0.01), Flags.doubleValue(line, "momentum", 0.9),
          false);
      case "adamw" -> new OptimizerSpec.AdamW(Flags.doubleValue(line, "lr", 0.001), 0.9, 0.999, 1e-7, 0.004, true);
      default -> throw new UsageException("--optimizer must be adam, sgd or adamw, got '" + optimizer + "'");
    });
    String schedule = line.getOptionValue("schedule", "constant").toUpperCase(Locale.ROOT);
    if (!List.of("CONSTANT", "COSINE", "SLANTED").contains(schedule)) {
      throw new UsageException("--schedule must be constant, cosine or slanted, got '"
          + line.getOptionValue("schedule") + "'");
    }
    double l2sp = Flags.doubleValue(line, "l2sp", 0);
    settings.add(b -> b.optimizer(spec).schedule(FineTuneJob.Schedule.valueOf(schedule)).l2sp(l2sp));
    if (line.hasOption("train") && line.hasOption("freeze")) {
      throw new UsageException("give --train or --freeze, not both");
    }
    if (line.hasOption("train")) {
      Selector s = Flags.parse(() -> Selector.parse(line.getOptionValue("train")));
      settings.add(b -> b.train(s));
    }
    if (line.hasOption("freeze")) {
      Selector s = Flags.parse(() -> Selector.parse(line.getOptionValue("freeze")));
      settings.add(b -> b.freeze(s));
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
      int every = k;
      double factor = Flags.doubleValue(line, "discriminative-lr", org.finetune.train.GradualUnfreezing.DEFAULT_FACTOR);
      settings.add(b -> b.unfreezeGradually(every).discriminativeFactor(factor));
      if (line.hasOption("groups")) {
        String g = line.getOptionValue("groups");
        List<Selector> groups = new ArrayList<>();
        for (String part : g.split(g.contains(";") ? ";" : ",")) {
          groups.add(Flags.parse(() -> Selector.parse(part.trim())));
        }
        settings.add(b -> b.groups(groups));
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
    boolean overwrite = line.hasOption("overwrite");
    settings.add(b -> b.overwrite(overwrite));
    path(line, "out", FineTuneJob.Builder::exportTo);
    path(line, "checkpoints", FineTuneJob.Builder::checkpoints);
    whole(line, "checkpoint-every", "batches", FineTuneJob.Builder::checkpointEvery);
    path(line, "resume", FineTuneJob.Builder::resume);
    path(line, "history", FineTuneJob.Builder::history);
    path(line, "tensorboard", FineTuneJob.Builder::tensorBoard);
    path(line, "curves", FineTuneJob.Builder::curves);
  }

  private void path(CommandLine line, String flag, java.util.function.BiConsumer<FineTuneJob.Builder, Path> set) {
    if (line.hasOption(flag)) {
      Path p = Path.of(line.getOptionValue(flag));
      settings.add(b -> set.accept(b, p));
    }
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
}
