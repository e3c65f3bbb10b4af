package org.finetune.cli;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.Set;
import java.util.TreeSet;
import org.apache.commons.cli.CommandLine;
import org.apache.commons.cli.Option;
import org.apache.commons.cli.Options;
import org.finetune.data.ImageDataset;
import org.finetune.data.ImageFolder;
import org.finetune.data.ImageOps;
import org.finetune.export.Checkpoint;
import org.finetune.export.CheckpointCallback;
import org.finetune.export.DirectoryDigest;
import org.finetune.export.ExportOptions;
import org.finetune.export.ExportResult;
import org.finetune.export.Exporter;
import org.finetune.model.KerasSavedModel;
import org.finetune.train.CsvLogger;
import org.finetune.train.EarlyStopping;
import org.finetune.train.Fit;
import org.finetune.train.GradualUnfreezing;
import org.finetune.train.HeadSpec;
import org.finetune.train.LossSpec;
import org.finetune.train.OptimizerSpec;
import org.finetune.train.PlanJson;
import org.finetune.train.ProgressLogger;
import org.finetune.train.Selector;
import org.finetune.train.Stage;
import org.finetune.train.Trainer;
import org.finetune.train.TrainingPlan;

/** {@code finetune train MODEL --data DIR --out DIR}: fine-tune an image classifier on a labelled folder. */
final class TrainCommand implements Command {
  @Override
  public String name() {
    return "train";
  }

  @Override
  public String synopsis() {
    return "MODEL --data PATH [--task image-classification|video-classification|causal-lm] [--out DIR] [--head]"
        + " [--epochs N]"
        + " [--unfreeze gradual:K] [...]";
  }

  @Override
  public String summary() {
    return "fine-tune a SavedModel on labelled images, video clips or text (causal LM) and export it";
  }

  @Override
  public String details() {
    return "DIR holds one sub-folder per class. Images are decoded, resized and preprocessed as Keras's\n"
        + "image_dataset_from_directory and preprocess_input would (VGG16: caffe, InceptionV3: tf; else\n"
        + "--preprocess). --head puts a new classifier (one output per class) on the features\n"
        + "(VGG16: block5_pool, InceptionV3: mixed10, or --features-at); by default only the head trains.\n"
        + "--unfreeze gradual:K adds one layer group from the top every K epochs (VGG16: block5, block4,\n"
        + "...; InceptionV3: mixed9, mixed8, ...; or --groups), each at 1/2.6 the rate of the one above\n"
        + "(--discriminative-lr). --plan FILE takes the whole plan from JSON instead; the resolved plan\n"
        + "is printed and kept in the export's assets/finetune.json. Checkpoints (--checkpoints DIR) hold\n"
        + "the optimizer state and data position: --resume DIR/last continues exactly.\n\n"
        + "--task video-classification trains on clips: DIR/<class>/<clip>/<frame>.png|jpg, frames in name\n"
        + "order, --frames N of them taken evenly from each clip. The image model runs on every frame with\n"
        + "shared weights, then a temporal head (--temporal conv: a 1-D convolution over time that sees the\n"
        + "order of frames; average: the mean over frames) and the classifier. The export takes\n"
        + "[batch, frames, height, width, 3] and returns class probabilities.\n\n"
        + "--task causal-lm fine-tunes a language model exported like keras-hub's GPT2CausalLM (inputs\n"
        + "token_ids and padding_mask) on text: --data takes files and folders (of *.txt), comma-separated;\n"
        + "documents are tokenised with GPT-2's BPE, joined with <|endoftext|> and cut into blocks of\n"
        + "--seq-len tokens. The loss is next-token cross-entropy; perplexity is reported. Validation text is\n"
        + "--val-data, or --val-split of the documents. Groups for --unfreeze: the last transformer layer\n"
        + "with the final layer norm, then each layer below, then the embeddings.";
  }

  @Override
  public Options options() {
    Options o = new Options();
    o.addOption(ModelFlags.allowUnsafeOps());
    ModelFlags.addRuntime(o);
    o.addOption(opt("data", "PATH", "labelled images: one sub-folder per class; with --task causal-lm, text files"
        + " and folders, comma-separated (required)"));
    o.addOption(opt("task", "TASK", "image-classification (default), video-classification or causal-lm"));
    o.addOption(opt("frames", "N", "video: frames taken evenly from each clip (default: 8)"));
    o.addOption(opt("temporal", "KIND", "video: how the head joins frames: conv (default, sees their order) or"
        + " average"));
    o.addOption(opt("val-data", "PATH", "causal-lm: validation text files and folders, comma-separated"));
    o.addOption(opt("seq-len", "N", "causal-lm: tokens per block (default: 128, at most the model's positions)"));
    o.addOption(opt("out", "DIR", "export the fine-tuned SavedModel here"));
    o.addOption(Option.builder().longOpt("head").desc("put a new classification head on the model").build());
    o.addOption(opt("hidden", "N", "hidden Dense units in the head (default: none)"));
    o.addOption(opt("dropout", "RATE", "dropout after the hidden layer (default: 0)"));
    o.addOption(opt("features-at", "LAYER", "the layer whose output feeds the head"));
    o.addOption(opt("train", "SELECTOR", "what trains at first (default: head with --head, else all)"));
    o.addOption(opt("freeze", "SELECTOR", "what stays frozen at first; everything else trains (not with --train)"));
    o.addOption(opt("unfreeze", "gradual:K", "unfreeze one more layer group from the top every K epochs"));
    o.addOption(opt("groups", "G1,G2,...", "layer groups for gradual unfreezing, top first (separate them with ';'"
        + " when a group itself holds commas, as layers:a,b does)"));
    o.addOption(opt("discriminative-lr", "F", "each lower group learns F times slower (default: 2.6)"));
    o.addOption(opt("optimizer", "NAME", "adam (default), sgd or adamw"));
    o.addOption(opt("lr", "RATE", "learning rate (default: the optimizer's Keras default)"));
    o.addOption(opt("momentum", "M", "SGD momentum (default: 0.9 with --optimizer sgd)"));
    o.addOption(opt("l2sp", "W", "L2-SP weight pulling weights back to the pretrained ones (default: 0)"));
    o.addOption(opt("batch-size", "N", "images per step (default: 32), or blocks of text (default: 8)"));
    o.addOption(opt("epochs", "N", "epochs (default: 5)"));
    o.addOption(opt("val-split", "F", "fraction held out for validation (default: 0.2; 0 for none)"));
    o.addOption(opt("seed", "N", "seeds the split, shuffling, augmentation and the head (default: 1234)"));
    o.addOption(opt("preprocess", "MODE", "caffe, tf, torch or none (default: from the model family)"));
    o.addOption(opt("image-size", "HxW", "input size, for models that take any size"));
    o.addOption(opt("early-stopping", "PATIENCE", "stop after PATIENCE epochs without improvement; keep the best"));
    o.addOption(opt("reduce-lr", "PATIENCE", "halve the learning rate after PATIENCE epochs without improvement"));
    o.addOption(opt("schedule", "NAME", "learning-rate schedule over the run: constant (default), cosine (10% warmup"
        + " then cosine decay to 0) or slanted (ULMFiT's slanted triangular)"));
    o.addOption(opt("checkpoints", "DIR", "write checkpoints (DIR/last every epoch, DIR/best)"));
    o.addOption(opt("checkpoint-every", "N", "with --checkpoints: also write DIR/last every N batches within an epoch"));
    o.addOption(opt("resume", "CHECKPOINT", "continue from a checkpoint (e.g. DIR/last)"));
    o.addOption(opt("history", "CSV", "write the per-epoch history as CSV"));
    o.addOption(opt("tensorboard", "DIR", "write TensorBoard event files (DIR/train, DIR/validation)"));
    o.addOption(opt("curves", "PNG", "draw the training curves (redrawn every epoch)"));
    o.addOption(opt("plan", "FILE", "take the training plan from this JSON file"));
    o.addOption(Option.builder().longOpt("no-cache")
        .desc("recompute the base every step even when only the head trains").build());
    o.addOption(Option.builder().longOpt("flip").desc("augment with random horizontal flips").build());
    o.addOption(opt("zoom", "F", "augment with random zoom-in: crops of 1-F to 1 of each side (default: off)"));
    o.addOption(opt("brightness", "F", "augment with random brightness shifts of up to F*255 (default: off)"));
    o.addOption(Option.builder().longOpt("strict").desc("fail on an unreadable image (or invalid UTF-8) instead of"
        + " skipping it (replacing it)").build());
    o.addOption(Option.builder().longOpt("overwrite").desc("replace --out if it exists").build());
    o.addOption(opt("on-non-finite", "POLICY", "stop (default): a NaN or infinite loss or gradient ends training, the"
        + " model keeping the last good step; skip: such batches are skipped (counted in skipped_batches)"));
    return o;
  }

  /** A flag with one value. */
  static Option opt(String name, String arg, String desc) {
    return Option.builder().longOpt(name).hasArg().argName(arg).desc(desc).build();
  }

  @Override
  public int run(CommandLine line, PrintWriter out, PrintWriter err) {
    List<String> args = line.getArgList();
    if (args.size() != 1) {
      throw new UsageException("give one SavedModel directory: finetune train MODEL --data DIR");
    }
    String task = line.getOptionValue("task", "image-classification");
    if (!task.equals("image-classification") && !task.equals("video-classification") && !task.equals("causal-lm")) {
      throw new UsageException("--task must be image-classification, video-classification or causal-lm, got '" + task
          + "'");
    }
    boolean video = task.equals("video-classification");
    if (!video && (line.hasOption("frames") || line.hasOption("temporal"))) {
      throw new UsageException("--frames and --temporal are for --task video-classification");
    }
    checkpointEvery(line);
    if (!line.hasOption("data")) {
      throw new UsageException(task.equals("causal-lm") ? "--data PATH is required: text files or folders of *.txt"
          : "--data DIR is required: a folder with one sub-folder of images per class");
    }
    if (task.equals("causal-lm")) {
      return new TextTraining(line, out, err).run();
    }
    Optional<Path> exportTo = Optional.ofNullable(line.getOptionValue("out")).map(Path::of);
    if (exportTo.isPresent() && Files.exists(exportTo.get()) && !line.hasOption("overwrite")) {
      throw new UsageException("the output " + exportTo.get() + " exists; choose another or add --overwrite");
    }
    long seed = longValue(line, "seed", 1234);
    int batchSize = (int) longValue(line, "batch-size", 32);
    int epochs = (int) longValue(line, "epochs", 5);
    double valSplit = doubleValue(line, "val-split", 0.2);
    Examples data = video ? clips(line, valSplit, seed) : images(line, valSplit, seed);
    Path modelDir = Path.of(args.get(0));
    Optional<Checkpoint.Info> resume = resume(line, modelDir);
    try (KerasSavedModel model = ModelFlags.open(modelDir, line)) {
      ImageModels image = ImageModels.of(model, ImageModels.parseSize(line.getOptionValue("image-size")));
      ImageOps.Preprocess preprocess = line.hasOption("preprocess")
          ? parse(() -> ImageOps.Preprocess.byName(line.getOptionValue("preprocess"))) : image.preprocess();
      long totalSteps = (long) epochs * ((data.trainExamples() + batchSize - 1) / batchSize);
      TrainingPlan plan = resume.isPresent() ? resume.get().plan()
          : plan(line, headSpec(line, image, data, seed), image.groups(), LossSpec.SPARSE_CATEGORICAL_CROSSENTROPY,
              totalSteps);
      OptionalInt every = unfreezeEvery(line, plan);
      OptionalInt outputs = ImageModels.outputClasses(model);
      if (plan.head().isEmpty() && outputs.isPresent() && data.classes().size() > outputs.getAsInt()) {
        throw new UsageException(modelDir + " scores " + outputs.getAsInt() + " classes but " + data.root() + " has "
            + data.classes().size() + " class folders, so labels would run past its output; add --head to train a"
            + " new classifier with one output per class folder");
      }
      ImageDataset.Options options = ImageDataset.Options.of(image.height(), image.width(), preprocess, batchSize)
          .seeded(seed).strictly(line.hasOption("strict")).flipping(line.hasOption("flip"))
          .zooming(doubleValue(line, "zoom", 0)).brightening(doubleValue(line, "brightness", 0));
      try (ImageDataset train = data.open(data.train(), options);
          ImageDataset val = data.validation().isEmpty() ? null
              : data.open(data.validation(), options.shuffled(false).flipping(false).zooming(0).brightening(0));
          Trainer trainer = new Trainer(model, plan)) {
        // printed once the data has been read, so that a bad image (with --strict) leaves nothing on stdout
        out.printf(Locale.ROOT, "Model: %s (%s, input %s %dx%d, preprocessing %s)%n", modelDir, image.family(),
            image.input(), image.height(), image.width(), preprocess.name().toLowerCase(Locale.ROOT));
        out.printf(Locale.ROOT, "Data: %s: %d classes (%s), %d %s for training, %d for validation%n",
            data.root(), data.classes().size(), String.join(", ", data.classes()), data.trainExamples(),
            video ? "clips of " + data.frames() + " frames" : "images", data.valExamples());
        out.println("Plan: " + new GsonBuilder().disableHtmlEscaping().create().toJson(PlanJson.toJson(plan)));
        Set<Path> skipped = new TreeSet<>(train.skipped());
        if (val != null) {
          skipped.addAll(val.skipped());
        }
        if (!skipped.isEmpty()) {
          err.println("warning: skipped " + skipped.size() + " unreadable image(s): " + String.join(", ",
              skipped.stream().map(Path::toString).toList()));
          err.flush();
        }
        Fit.Start start = restore(trainer, resume, out);
        trainer.warnings().forEach(w -> err.println("warning: " + w));
        String monitor = val != null ? "val_loss" : "loss";
        Callbacks cbs = callbacks(line, out, monitor, resume.isPresent());
        List<Fit.Callback> callbacks = cbs.list();
        // The new head alone trains and nothing is augmented: the base's features never change, so
        // they are computed once and the runtime runs only the head (line.hasOption("no-cache") opts out).
        boolean cache = plan.stages().size() == 1 && trainer.headOnly(0) && !options.augmented()
            && !line.hasOption("no-cache");
        List<Fit.Epoch> history;
        if (cache) {
          out.println("Caching the base's features: only the new head trains and nothing is augmented");
          out.flush();
          try (org.finetune.train.FeatureCache trainCache = org.finetune.train.FeatureCache.build(trainer, train,
                  image.input(), 1L << 30);
              org.finetune.train.FeatureCache valCache = val == null ? null
                  : org.finetune.train.FeatureCache.build(trainer, val, image.input(), 1L << 30)) {
            history = Fit.run(trainer, trainCache, Optional.ofNullable(valCache), fitOptions(line, epochs, every),
                callbacks, start);
          }
        } else {
          history = Fit.run(trainer, Fit.images(train, image.input()),
              Optional.ofNullable(val).map(v -> Fit.images(v, image.input())), fitOptions(line, epochs, every),
              callbacks, start);
        }
        com.google.gson.JsonObject extra = new com.google.gson.JsonObject();
        com.google.gson.JsonArray names = new com.google.gson.JsonArray();
        data.classes().forEach(names::add);
        extra.add("classes", names);
        extra.addProperty("preprocess", preprocess.name().toLowerCase(Locale.ROOT));
        extra.addProperty("data", data.root().toAbsolutePath().toString());
        if (video) {
          extra.addProperty("frames", data.frames());
        }
        finish(line, out, trainer, history, epochs, start, cbs.early(), monitor, exportTo, extra,
            DirectoryDigest.of(data.root()));
      }
    }
    return ExitCode.OK;
  }

  /** Epochs, unfreezing and the --on-non-finite policy. */
  static Fit.Options fitOptions(CommandLine line, int epochs, OptionalInt every) {
    String policy = line.getOptionValue("on-non-finite", "stop").toUpperCase(Locale.ROOT);
    if (!policy.equals("STOP") && !policy.equals("SKIP")) {
      throw new UsageException("--on-non-finite takes stop or skip, got '" + line.getOptionValue("on-non-finite") + "'");
    }
    return new Fit.Options(epochs, every).withNonFinite(Fit.NonFinite.valueOf(policy));
  }

  /** The checkpoint to resume from (--resume), refused when it was trained from another model. */
  static Optional<Checkpoint.Info> resume(CommandLine line, Path modelDir) {
    if (!line.hasOption("resume")) {
      return Optional.empty();
    }
    Checkpoint.Info info;
    try {
      info = Checkpoint.read(Path.of(line.getOptionValue("resume")));
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage());
    }
    if (!DirectoryDigest.of(modelDir).equals(info.modelDigest())) {
      throw new UsageException("the checkpoint " + info.dir() + " was trained from another model than " + modelDir);
    }
    return Optional.of(info);
  }

  /** Restores a checkpoint into the trainer; where the run continues. */
  static Fit.Start restore(Trainer trainer, Optional<Checkpoint.Info> resume, PrintWriter out) {
    if (resume.isEmpty()) {
      return Fit.Start.BEGINNING;
    }
    Checkpoint.restore(trainer, resume.get());
    var extra = resume.get().extra();
    Fit.Start start = new Fit.Start(extra.has("epoch") ? extra.get("epoch").getAsInt() : 0,
        extra.has("batch") ? extra.get("batch").getAsInt() : 0);
    if (extra.has("rate_scale")) {
      trainer.setRateScale(extra.get("rate_scale").getAsDouble());
    }
    out.printf(Locale.ROOT, "Resuming from %s at epoch %d, batch %d (%d optimizer steps)%n", resume.get().dir(),
        start.epoch() + 1, start.batch(), trainer.iterations());
    return start;
  }

  /** The callbacks the flags ask for, and the early stopping among them (or null). */
  record Callbacks(List<Fit.Callback> list, EarlyStopping early) {}

  static Callbacks callbacks(CommandLine line, PrintWriter out, String monitor, boolean resumed) {
    List<Fit.Callback> callbacks = new ArrayList<>();
    callbacks.add(new ProgressLogger(out, System.console() != null));
    EarlyStopping early = null;
    if (line.hasOption("early-stopping")) {
      early = new EarlyStopping(monitor, (int) longValue(line, "early-stopping", 3), 0, true);
      callbacks.add(early);
    }
    if (line.hasOption("reduce-lr")) {
      callbacks.add(new org.finetune.train.ReduceLrOnPlateau(monitor, 0.5, (int) longValue(line, "reduce-lr", 2),
          1e-7));
    }
    if (line.hasOption("checkpoints")) {
      callbacks.add(new CheckpointCallback(Path.of(line.getOptionValue("checkpoints")), monitor,
          checkpointEvery(line)));
    }
    if (line.hasOption("history")) {
      callbacks.add(new CsvLogger(Path.of(line.getOptionValue("history")), resumed));
    }
    if (line.hasOption("tensorboard")) {
      callbacks.add(new org.finetune.train.TensorBoardLogger(Path.of(line.getOptionValue("tensorboard"))));
    }
    if (line.hasOption("curves")) {
      callbacks.add(new org.finetune.train.CurvesPlot(Path.of(line.getOptionValue("curves"))));
    }
    return new Callbacks(callbacks, early);
  }

  /** Batches between checkpoints within an epoch (--checkpoint-every), 0 for none; checked before anything runs. */
  static int checkpointEvery(CommandLine line) {
    if (!line.hasOption("checkpoint-every")) {
      return 0;
    }
    if (!line.hasOption("checkpoints")) {
      throw new UsageException("--checkpoint-every needs --checkpoints DIR: where to write the checkpoints");
    }
    long every = longValue(line, "checkpoint-every", 0);
    if (every < 1 || every > Integer.MAX_VALUE) {
      throw new UsageException("--checkpoint-every takes a number of batches >= 1, got '"
          + line.getOptionValue("checkpoint-every") + "'");
    }
    return (int) every;
  }

  /** After training: the best epoch when early stopping ran, and the export (--out). */
  static void finish(CommandLine line, PrintWriter out, Trainer trainer, List<Fit.Epoch> history, int epochs,
      Fit.Start start, EarlyStopping early, String monitor, Optional<Path> exportTo, com.google.gson.JsonObject extra,
      String dataDigest) {
    if (history.isEmpty()) {
      out.println("Nothing to do: the run had finished all " + epochs + " epochs.");
    }
    Map<String, Double> last = history.isEmpty() ? Map.of() : history.get(history.size() - 1).logs();
    if (early != null && early.bestEpoch() >= 0) {
      out.printf(Locale.ROOT, "Best %s %.4f at epoch %d%s%n", monitor, early.best(), early.bestEpoch() + 1,
          history.size() < epochs - start.epoch() ? " (stopped early; its weights restored)" : "");
    }
    if (exportTo.isPresent()) {
      ExportOptions eo = ExportOptions.defaults().overwriting(line.hasOption("overwrite"))
          .trainingRecord(start.epoch() + history.size(), last, Optional.of(dataDigest)).withExtra(extra);
      ExportResult r;
      try {
        r = Exporter.export(trainer, exportTo.get(), eo);
      } catch (IllegalArgumentException e) {
        throw new UsageException(e.getMessage());
      }
      out.printf(Locale.ROOT, "Exported to %s (%s, %d variables, %.1f MB)%n", r.dir(),
          r.mode() == ExportResult.Mode.NEW_HEAD ? "new head" : "same architecture", r.variables(), r.bytes() / 1e6);
    }
  }

  /**
   * Labelled examples split for training and validation: images (one item each) or clips
   * ({@code frames} consecutive items each).
   */
  private record Examples(Path root, List<String> classes, List<ImageFolder.Item> train,
      List<ImageFolder.Item> validation, int frames) {
    int trainExamples() {
      return train.size() / Math.max(1, frames);
    }

    int valExamples() {
      return validation.size() / Math.max(1, frames);
    }

    ImageDataset open(List<ImageFolder.Item> items, ImageDataset.Options options) {
      if (frames == 0) {
        return ImageDataset.open(items, options);
      }
      try {
        return ImageDataset.clips(items, frames, options);
      } catch (IllegalArgumentException e) {
        throw new UsageException(e.getMessage() + "; leave out --flip, --zoom and --brightness");
      }
    }
  }

  private static Examples images(CommandLine line, double valSplit, long seed) {
    try {
      ImageFolder folder = ImageFolder.scan(Path.of(line.getOptionValue("data")));
      ImageFolder.Split split = folder.split(valSplit, seed);
      return new Examples(folder.root(), folder.classes(), split.train(), split.validation(), 0);
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage());
    }
  }

  private static Examples clips(CommandLine line, double valSplit, long seed) {
    int frames = (int) longValue(line, "frames", 8);
    if (frames < 2) {
      throw new UsageException("--frames must be at least 2, got " + frames);
    }
    try {
      org.finetune.data.ClipFolder folder = org.finetune.data.ClipFolder.scan(Path.of(line.getOptionValue("data")));
      org.finetune.data.ClipFolder.Split split = folder.split(valSplit, seed);
      return new Examples(folder.root(), folder.classes(), org.finetune.data.ClipFolder.frames(split.train(), frames),
          org.finetune.data.ClipFolder.frames(split.validation(), frames), frames);
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage());
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

  /**
   * The new head --head asks for (one output per class, on the family's features or --features-at);
   * for clips, always one, over the frames.
   */
  private static Optional<HeadSpec> headSpec(CommandLine line, ImageModels image, Examples data, long seed) {
    if (data.frames() > 0) {
      HeadSpec spec = imageHead(line, image, data.classes().size(), seed).clips(data.frames(), temporal(line));
      return Optional.of(spec);
    }
    if (!line.hasOption("head")) {
      if (line.hasOption("hidden") || line.hasOption("dropout") || line.hasOption("features-at")) {
        throw new UsageException("--hidden, --dropout and --features-at shape a new head; add --head");
      }
      return Optional.empty();
    }
    return Optional.of(imageHead(line, image, data.classes().size(), seed));
  }

  private static HeadSpec imageHead(CommandLine line, ImageModels image, int classes, long seed) {
    HeadSpec spec = HeadSpec.classifier(classes).seed(seed);
    Optional<String> at = Optional.ofNullable(line.getOptionValue("features-at")).or(image::featuresAt);
    if (at.isPresent()) {
      spec = spec.at(at.get());
    }
    if (line.hasOption("hidden")) {
      spec = spec.hidden((int) longValue(line, "hidden", 0), doubleValue(line, "dropout", 0));
    } else if (line.hasOption("dropout")) {
      throw new UsageException("--dropout applies after the hidden layer; give --hidden N too");
    }
    return spec;
  }

  /**
   * The plan from --plan, or from the flags: the head (if any), the optimizer and schedule, L2-SP,
   * and the stages (--train/--freeze, then one more of {@code groups} every stage with --unfreeze).
   */
  static TrainingPlan plan(CommandLine line, Optional<HeadSpec> head, List<String> groups, LossSpec loss,
      long totalSteps) {
    if (line.hasOption("plan")) {
      String file = line.getOptionValue("plan");
      com.google.gson.JsonElement json;
      try {
        if (Files.isDirectory(Path.of(file))) {
          throw new UsageException("--plan " + file + " is a folder; give the plan's JSON file");
        }
        json = JsonParser.parseString(Files.readString(Path.of(file)));
      } catch (IOException e) {
        throw new UsageException("cannot read the plan " + file + ": " + e.getMessage());
      } catch (com.google.gson.JsonParseException e) {
        throw new UsageException("the plan " + file + " is not valid JSON (" + PlanJson.syntaxError(e) + "); fix it"
            + " there");
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
    TrainingPlan.Builder b = TrainingPlan.builder().loss(loss);
    head.ifPresent(b::head);
    String optimizer = line.getOptionValue("optimizer", "adam").toLowerCase(Locale.ROOT);
    OptimizerSpec spec = switch (optimizer) {
      case "adam" -> new OptimizerSpec.Adam(doubleValue(line, "lr", 0.001), 0.9, 0.999, 1e-7);
      case "sgd" -> new OptimizerSpec.Sgd(doubleValue(line, "lr", 0.01), doubleValue(line, "momentum", 0.9), false);
      case "adamw" -> new OptimizerSpec.AdamW(doubleValue(line, "lr", 0.001), 0.9, 0.999, 1e-7, 0.004, true);
      default -> throw new UsageException("--optimizer must be adam, sgd or adamw, got '" + optimizer + "'");
    };
    b.optimizer(spec);
    String schedule = line.getOptionValue("schedule", "constant").toLowerCase(Locale.ROOT);
    switch (schedule) {
      case "constant" -> { }
      case "cosine" -> b.schedule(parse(() -> new org.finetune.train.LearningRateSchedule.CosineWarmup(0,
          spec.learningRate(), Math.max(1, totalSteps / 10), Math.max(1, totalSteps - totalSteps / 10), 0)));
      case "slanted" -> b.schedule(parse(() -> new org.finetune.train.LearningRateSchedule.SlantedTriangular(
          spec.learningRate(), Math.max(1, totalSteps), 0.1, 32)));
      default -> throw new UsageException("--schedule must be constant, cosine or slanted, got '" + schedule + "'");
    }
    if (line.hasOption("l2sp")) {
      b.l2sp(doubleValue(line, "l2sp", 0));
    }
    if (line.hasOption("train") && line.hasOption("freeze")) {
      throw new UsageException("give --train or --freeze, not both");
    }
    Selector first = line.hasOption("freeze")
        ? new Selector.Not(parse(() -> Selector.parse(line.getOptionValue("freeze"))))
        : parse(() -> Selector.parse(line.getOptionValue("train", head.isPresent() ? "head" : "all")));
    if (line.hasOption("unfreeze")) {
      if (line.hasOption("groups")) {
        String g = line.getOptionValue("groups");
        groups = List.of(g.split(g.contains(";") ? ";" : ","));
      }
      if (groups.isEmpty()) {
        throw new UsageException("--unfreeze needs layer groups for this model; give --groups G1,G2,... (top first)");
      }
      List<Selector> selectors = new ArrayList<>();
      // Without a new head or an explicit first stage, the first stage is the top group itself.
      if (head.isPresent() || line.hasOption("train") || line.hasOption("freeze")) {
        selectors.add(first);
      }
      for (String g : groups) {
        selectors.add(parse(() -> Selector.parse(g.trim())));
      }
      b.stages(GradualUnfreezing.fromTop(selectors, doubleValue(line, "discriminative-lr", GradualUnfreezing.DEFAULT_FACTOR)));
    } else {
      b.stage(Stage.of(first));
    }
    try {
      return b.build();
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage());
    }
  }

  static OptionalInt unfreezeEvery(CommandLine line, TrainingPlan plan) {
    if (!line.hasOption("unfreeze")) {
      return plan.stages().size() > 1 ? OptionalInt.of(1) : OptionalInt.empty();
    }
    String v = line.getOptionValue("unfreeze");
    if (!v.startsWith("gradual:")) {
      throw new UsageException("--unfreeze takes gradual:K (one more group every K epochs), got '" + v + "'");
    }
    try {
      int k = Integer.parseInt(v.substring("gradual:".length()));
      if (k < 1) {
        throw new NumberFormatException();
      }
      return OptionalInt.of(k);
    } catch (NumberFormatException e) {
      throw new UsageException("--unfreeze gradual:K needs a whole number of epochs K >= 1, got '" + v + "'");
    }
  }

  private static <T> T parse(java.util.function.Supplier<T> s) {
    try {
      return s.get();
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage());
    }
  }

  static long longValue(CommandLine line, String name, long fallback) {
    String v = line.getOptionValue(name);
    if (v == null) {
      return fallback;
    }
    try {
      return Long.parseLong(v.trim());
    } catch (NumberFormatException e) {
      throw new UsageException("--" + name + " must be a whole number, got '" + v + "'");
    }
  }

  static double doubleValue(CommandLine line, String name, double fallback) {
    String v = line.getOptionValue(name);
    if (v == null) {
      return fallback;
    }
    try {
      return Double.parseDouble(v.trim());
    } catch (NumberFormatException e) {
      throw new UsageException("--" + name + " must be a number, got '" + v + "'");
    }
  }
}
