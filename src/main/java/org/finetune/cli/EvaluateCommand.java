package org.finetune.cli;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import org.apache.commons.cli.CommandLine;
import org.apache.commons.cli.Option;
import org.apache.commons.cli.Options;
import org.finetune.data.ImageDataset;
import org.finetune.data.ImageFolder;
import org.finetune.data.ImageOps;
import org.finetune.data.TextCorpus;
import org.finetune.data.TextDataset;
import org.finetune.export.Provenance;
import org.finetune.job.ImageInput;
import org.finetune.job.LanguageModelInput;
import org.finetune.job.ModelFamily;
import org.finetune.model.KerasSavedModel;
import org.finetune.text.Gpt2Tokenizer;
import org.finetune.train.Fit;
import org.finetune.train.LossSpec;
import org.finetune.train.Selector;
import org.finetune.train.Stage;
import org.finetune.train.Trainer;
import org.finetune.train.TrainingPlan;

/** {@code finetune evaluate MODEL --data DIR}: loss, accuracy, per-class figures and the confusion matrix. */
final class EvaluateCommand implements Command {
  @Override
  public String name() {
    return "evaluate";
  }

  @Override
  public String synopsis() {
    return "MODEL --data DIR [--task image-classification|video-classification|causal-lm] [--batch-size N]"
        + " [--preprocess MODE]"
        + " [--image-size HxW]";
  }

  @Override
  public String summary() {
    return "evaluate an image or video classifier on a labelled folder: accuracy, per-class precision/recall/F1,"
        + " confusion";
  }

  @Override
  public String details() {
    return "DIR holds one sub-folder per class, in the order of the model's outputs (sorted names, as\n"
        + "finetune train and Keras's image_dataset_from_directory use). The loss is the cross-entropy of\n"
        + "the output taken as probabilities (clipped to [1e-7, 1 - 1e-7], as Keras does).\n\n"
        + "A video model (one that takes [batch, frames, height, width, 3], as finetune train --task\n"
        + "video-classification exports) is evaluated on clips: DIR/<class>/<clip>/<frame>.png|jpg, its\n"
        + "number of frames taken evenly from each clip.";
  }

  @Override
  public Options options() {
    Options o = new Options();
    o.addOption(ModelFlags.allowUnsafeOps());
    ModelFlags.addRuntime(o);
    o.addOption(Option.builder().longOpt("data").hasArg().argName("DIR").desc("labelled images (required); with"
        + " --task causal-lm, text files and folders, comma-separated").build());
    o.addOption(Option.builder().longOpt("task").hasArg().argName("TASK")
        .desc("image-classification (default), video-classification (the model's input decides between these"
            + " two) or causal-lm (perplexity of a language model on text)").build());
    o.addOption(Option.builder().longOpt("seq-len").hasArg().argName("N")
        .desc("causal-lm: tokens per block (default: 128, at most the model's positions)").build());
    o.addOption(Option.builder().longOpt("batch-size").hasArg().argName("N").desc("images per run (default: 32)").build());
    o.addOption(Option.builder().longOpt("preprocess").hasArg().argName("MODE")
        .desc("caffe, tf, torch or none (default: from the model family)").build());
    o.addOption(Option.builder().longOpt("confusion").hasArg().argName("PNG")
        .desc("also draw the confusion matrix as a PNG").build());
    o.addOption(Option.builder().longOpt("image-size").hasArg().argName("HxW").desc("for models of any input size").build());
    return o;
  }

  @Override
  public int run(CommandLine line, PrintWriter out, PrintWriter err) {
    List<String> args = line.getArgList();
    if (args.size() != 1 || !line.hasOption("data")) {
      throw new UsageException("give a model and a labelled folder: finetune evaluate MODEL --data DIR");
    }
    String task = line.getOptionValue("task", "image-classification");
    if (task.equals("causal-lm")) {
      return evaluateText(line, Path.of(args.get(0)), out, err);
    }
    if (!task.equals("image-classification") && !task.equals("video-classification")) {
      throw new UsageException("--task must be image-classification, video-classification or causal-lm, got '" + task
          + "'");
    }
    Path modelDir = Path.of(args.get(0));
    try (KerasSavedModel model = ModelFlags.open(modelDir, line)) {
      ImageInput image = ImageInput.of(model, Flags.imageSize(line.getOptionValue("image-size")));
      if (task.equals("video-classification") && image.frames() == 0) {
        throw new UsageException(modelDir + " takes images, not clips [batch, frames, height, width, 3]; evaluate it"
            + " with --task image-classification");
      }
      Labelled folder = Labelled.scan(Path.of(line.getOptionValue("data")), image.frames());
      ImageOps.Preprocess preprocess = preprocess(line, model);
      List<String> recorded = ImageClassifier.recordedClasses(modelDir);
      if (!recorded.isEmpty() && !recorded.equals(folder.classes())) {
        throw new UsageException("the model was trained on classes " + recorded + " but " + folder.root()
            + " has " + folder.classes());
      }
      java.util.OptionalInt outputs = ImageInput.outputClasses(model);
      if (outputs.isPresent() && outputs.getAsInt() != folder.classes().size()) {
        throw new UsageException(modelDir + " scores " + outputs.getAsInt() + " classes but " + folder.root() + " has "
            + folder.classes().size() + " class folders; evaluate on a folder with one sub-folder per class the model"
            + " was trained on (sorted by name), or train a head for these classes (finetune train --head)");
      }
      ImageDataset.Options options = options(image, preprocess, (int) Flags.longValue(line, "batch-size", 32));
      List<ImageClassifier.Prediction> predictions;
      try (ImageDataset data = image.frames() > 0 ? ImageDataset.clips(folder.items(), image.frames(), options)
          : ImageDataset.open(folder.items(), options)) {
        predictions = ImageClassifier.run(model, image, data);
        if (predictions.isEmpty()) {
          throw new UsageException("no readable image in " + folder.root() + " (unreadable: " + String.join(", ",
              data.skipped().stream().map(Path::toString).sorted().toList()) + "); give JPEG, PNG, GIF, BMP or TIFF"
              + " files");
        }
        if (!data.skipped().isEmpty()) {
          err.println("warning: skipped " + data.skipped().size() + " unreadable image(s): "
              + String.join(", ", data.skipped().stream().map(Path::toString).sorted().toList()));
        }
      }
      int k = folder.classes().size();
      if (!predictions.isEmpty() && predictions.get(0).scores().length != k) {
        throw new UsageException("the model has " + predictions.get(0).scores().length + " outputs but " + folder.root()
            + " has " + k + " classes");
      }
      long[][] confusion = new long[k][k];
      double loss = 0;
      for (ImageClassifier.Prediction p : predictions) {
        confusion[p.label()][p.top()]++;
        double prob = Math.min(Math.max(p.scores()[p.label()], 1e-7), 1 - 1e-7);
        loss -= Math.log(prob);
      }
      long n = predictions.size();
      long hits = 0;
      for (int c = 0; c < k; c++) {
        hits += confusion[c][c];
      }
      out.printf(Locale.ROOT, "%s on %s: %d %s, %d classes%n", modelDir, folder.root(), n,
          image.frames() > 0 ? "clips of " + image.frames() + " frames" : "images", k);
      out.printf(Locale.ROOT, "loss %.4f, accuracy %.4f%n%n", loss / n, (double) hits / n);
      int width = Math.max(8, folder.classes().stream().mapToInt(String::length).max().orElse(8));
      out.printf(Locale.ROOT, "%-" + width + "s %9s %9s %9s %8s%n", "class", "precision", "recall", "f1", "support");
      for (int c = 0; c < k; c++) {
        long predicted = 0;
        long actual = 0;
        for (int j = 0; j < k; j++) {
          predicted += confusion[j][c];
          actual += confusion[c][j];
        }
        double precision = predicted == 0 ? 0 : (double) confusion[c][c] / predicted;
        double recall = actual == 0 ? 0 : (double) confusion[c][c] / actual;
        double f1 = precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall);
        out.printf(Locale.ROOT, "%-" + width + "s %9.4f %9.4f %9.4f %8d%n", folder.classes().get(c), precision, recall, f1,
            actual);
      }
      out.println();
      out.println("confusion matrix (rows: true class, columns: predicted)");
      out.printf(Locale.ROOT, "%-" + width + "s", "");
      for (String c : folder.classes()) {
        out.printf(Locale.ROOT, " %" + Math.max(6, c.length()) + "s", c);
      }
      out.println();
      for (int c = 0; c < k; c++) {
        out.printf(Locale.ROOT, "%-" + width + "s", folder.classes().get(c));
        for (int j = 0; j < k; j++) {
          out.printf(Locale.ROOT, " %" + Math.max(6, folder.classes().get(j).length()) + "d", confusion[c][j]);
        }
        out.println();
      }
      if (line.hasOption("confusion")) {
        Path png = Path.of(line.getOptionValue("confusion"));
        ConfusionPlot.write(folder.classes(), confusion, png);
        out.println("\nwrote " + png);
      }
    }
    return ExitCode.OK;
  }

  /** A labelled folder of images, or of clips (their frames, {@code frames} per clip, in order). */
  record Labelled(Path root, List<String> classes, List<ImageFolder.Item> items) {
    static Labelled scan(Path root, int frames) {
      try {
        if (frames > 0) {
          org.finetune.data.ClipFolder clips = org.finetune.data.ClipFolder.scan(root);
          return new Labelled(clips.root(), clips.classes(), org.finetune.data.ClipFolder.frames(clips.clips(), frames));
        }
        ImageFolder folder = ImageFolder.scan(root);
        return new Labelled(folder.root(), folder.classes(), folder.items());
      } catch (IllegalArgumentException e) {
        throw new UsageException(Flags.message(e));
      }
    }
  }

  /** Unshuffled batches of the model's images: RGB or grey as it takes them, preprocessed by {@code preprocess}. */
  static ImageDataset.Options options(ImageInput image, ImageOps.Preprocess preprocess, int batchSize) {
    if (!ImageOps.fits(preprocess, image.channels())) {
      throw new UsageException("the model takes grey images and " + preprocess.name().toLowerCase(java.util.Locale.ROOT)
          + " preprocessing subtracts a mean per RGB channel; give --preprocess tf or none");
    }
    return ImageDataset.Options.of(image.height(), image.width(), preprocess, batchSize).channels(image.channels())
        .shuffled(false);
  }

  /**
   * --preprocess, else the model family's, else what an export of ours recorded, else none (said
   * in a warning by the caller's data summary).
   */
  static ImageOps.Preprocess preprocess(CommandLine line, KerasSavedModel model) {
    if (line.hasOption("preprocess")) {
      return Flags.parse(() -> ImageOps.Preprocess.byName(line.getOptionValue("preprocess")));
    }
    return ModelFamily.detect(model).preprocess()
        .or(() -> ImageClassifier.provenance(model.info().dir()).flatMap(Provenance::preprocess))
        .orElse(ImageOps.Preprocess.NONE);
  }

  /** {@code finetune evaluate --task causal-lm}: loss, perplexity and next-token accuracy on text. */
  static int evaluateText(CommandLine line, Path modelDir, PrintWriter out, PrintWriter err) {
    TextCorpus corpus = Flags.parse(() -> TextCorpus.read(Flags.paths(line.getOptionValue("data")),
        line.hasOption("strict")));
    corpus.warnings().forEach(w -> err.println("warning: " + w));
    try (KerasSavedModel model = ModelFlags.open(modelDir, line)) {
      int length = LanguageModelInput.of(model).blockLength(line.hasOption("seq-len")
          ? java.util.OptionalInt.of((int) Flags.longValue(line, "seq-len", 0)) : java.util.OptionalInt.empty());
      TextDataset data = Flags.parse(() -> TextDataset.of(Gpt2Tokenizer.get().encode(corpus),
          Gpt2Tokenizer.END_OF_TEXT, new TextDataset.Options(length, (int) Flags.longValue(line, "batch-size", 8),
              false, 0)));
      TrainingPlan plan = TrainingPlan.builder().loss(LossSpec.CAUSAL_LM).stage(Stage.of(new Selector.All())).build();
      try (Trainer trainer = new Trainer(model, plan)) {
        java.util.Map<String, Double> m = Fit.evaluate(trainer, Fit.tokens(data), 0).values("");
        out.printf(Locale.ROOT, "%d documents, %d next-token predictions (blocks of %d)%n", corpus.documents().size(),
            data.predictions(), length);
        out.printf(Locale.ROOT, "loss %.4f, perplexity %.2f, next-token accuracy %.4f%n", m.get("loss"),
            m.get("perplexity"), m.get("accuracy"));
      }
    }
    return ExitCode.OK;
  }
}
