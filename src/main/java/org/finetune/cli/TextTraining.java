package org.finetune.cli;

import com.google.gson.GsonBuilder;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import org.apache.commons.cli.CommandLine;
import org.finetune.data.TextCorpus;
import org.finetune.data.TextDataset;
import org.finetune.export.Checkpoint;
import org.finetune.model.KerasSavedModel;
import org.finetune.text.Gpt2Tokenizer;
import org.finetune.train.Fit;
import org.finetune.train.LossSpec;
import org.finetune.train.PlanJson;
import org.finetune.train.Trainer;
import org.finetune.train.TrainingPlan;

/** {@code finetune train --task causal-lm}: a language model fine-tuned on text files. */
final class TextTraining {
  private final CommandLine line;
  private final PrintWriter out;
  private final PrintWriter err;

  TextTraining(CommandLine line, PrintWriter out, PrintWriter err) {
    this.line = line;
    this.out = out;
    this.err = err;
  }

  /** Paths from a comma-separated flag value. */
  static List<Path> paths(String value) {
    List<Path> out = new ArrayList<>();
    for (String p : value.split(",")) {
      if (!p.isBlank()) {
        out.add(Path.of(p.trim()));
      }
    }
    return out;
  }

  /** Each document's tokens. */
  static List<int[]> tokens(TextCorpus corpus) {
    Gpt2Tokenizer tokenizer = Gpt2Tokenizer.get();
    return corpus.documents().stream().map(d -> tokenizer.encode(d.text())).toList();
  }

  int run() {
    List<String> args = line.getArgList();
    Path modelDir = Path.of(args.get(0));
    Optional<Path> exportTo = Optional.ofNullable(line.getOptionValue("out")).map(Path::of);
    if (exportTo.isPresent() && Files.exists(exportTo.get()) && !line.hasOption("overwrite")) {
      throw new UsageException("the output " + exportTo.get() + " exists; choose another or add --overwrite");
    }
    for (String imageOnly : List.of("head", "hidden", "dropout", "features-at", "preprocess", "image-size", "flip",
        "zoom", "brightness", "no-cache")) {
      if (line.hasOption(imageOnly)) {
        throw new UsageException("--" + imageOnly + " applies to images, not to --task causal-lm");
      }
    }
    long seed = TrainCommand.longValue(line, "seed", 1234);
    int batchSize = (int) TrainCommand.longValue(line, "batch-size", 8);
    int epochs = (int) TrainCommand.longValue(line, "epochs", 5);
    boolean strict = line.hasOption("strict");
    TextCorpus train;
    Optional<TextCorpus> validation;
    try {
      TextCorpus all = TextCorpus.read(paths(line.getOptionValue("data")), strict);
      if (line.hasOption("val-data")) {
        if (line.hasOption("val-split")) {
          throw new UsageException("give --val-data or --val-split, not both");
        }
        train = all;
        validation = Optional.of(TextCorpus.read(paths(line.getOptionValue("val-data")), strict));
      } else {
        double split = TrainCommand.doubleValue(line, "val-split", 0.1);
        if (split == 0) {
          train = all;
          validation = Optional.empty();
        } else {
          TextCorpus[] parts = all.split(split, seed);
          train = parts[0];
          validation = Optional.of(parts[1]);
        }
      }
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage());
    }
    List<String> warnings = new ArrayList<>(train.warnings());
    validation.ifPresent(v -> warnings.addAll(v.warnings()));
    warnings.forEach(w -> err.println("warning: " + w));
    err.flush();
    Optional<Checkpoint.Info> resume = TrainCommand.resume(line, modelDir);
    try (KerasSavedModel model = ModelFlags.open(modelDir, line)) {
      LanguageModels lm = LanguageModels.of(model);
      int length = (int) TrainCommand.longValue(line, "seq-len", Math.min(128, lm.positions()));
      if (length > lm.positions()) {
        throw new UsageException("--seq-len " + length + " exceeds the model's " + lm.positions() + " positions");
      }
      TextDataset.Options options = new TextDataset.Options(length, batchSize, true, seed);
      TextDataset trainData = data(tokens(train), options);
      Optional<TextDataset> valData = validation.map(v -> data(tokens(v), options.shuffled(false)));
      long totalSteps = (long) epochs * trainData.batchesPerEpoch();
      TrainingPlan plan = resume.isPresent() ? resume.get().plan()
          : TrainCommand.plan(line, Optional.empty(), lm.groups(), LossSpec.CAUSAL_LM, totalSteps);
      if (plan.loss() != LossSpec.CAUSAL_LM) {
        throw new UsageException("--task causal-lm trains with the causal_lm loss; the plan asks for "
            + plan.loss().kerasName());
      }
      out.printf(Locale.ROOT, "Model: %s (causal LM, %d transformer layers, %d positions)%n", modelDir,
          lm.transformerLayers(), lm.positions());
      out.printf(Locale.ROOT, "Data: %d documents, %d tokens for training (%d blocks of %d)%s%n",
          train.documents().size(), trainData.tokens(), trainData.blocks(), length,
          valData.map(v -> String.format(Locale.ROOT, "; %d documents, %d tokens for validation",
              validation.get().documents().size(), v.tokens())).orElse("; no validation"));
      out.println("Plan: " + new GsonBuilder().disableHtmlEscaping().create().toJson(PlanJson.toJson(plan)));
      try (Trainer trainer = new Trainer(model, plan)) {
        Fit.Start start = TrainCommand.restore(trainer, resume, out);
        trainer.warnings().forEach(w -> err.println("warning: " + w));
        String monitor = valData.isPresent() ? "val_loss" : "loss";
        TrainCommand.Callbacks cbs = TrainCommand.callbacks(line, out, monitor, resume.isPresent());
        long began = System.nanoTime();
        List<Fit.Epoch> history = Fit.run(trainer, Fit.tokens(trainData), valData.map(Fit::tokens),
            TrainCommand.fitOptions(line, epochs, TrainCommand.unfreezeEvery(line, plan)), cbs.list(), start);
        double seconds = (System.nanoTime() - began) / 1e9;
        long trained = history.size() * trainData.predictions();
        if (!history.isEmpty()) {
          out.printf(Locale.ROOT, "Trained on %d tokens in %.1f s (%.0f tokens/s, validation included)%n", trained,
              seconds, trained / seconds);
        }
        com.google.gson.JsonObject extra = new com.google.gson.JsonObject();
        extra.addProperty("task", "causal-lm");
        extra.addProperty("tokenizer", "gpt2 (r50k_base)");
        extra.addProperty("sequence_length", length);
        extra.addProperty("data", String.join(",", paths(line.getOptionValue("data")).stream()
            .map(p -> p.toAbsolutePath().toString()).toList()));
        finish(trainer, history, epochs, start, cbs, monitor, exportTo, extra, train.digest());
      }
    }
    return ExitCode.OK;
  }

  private void finish(Trainer trainer, List<Fit.Epoch> history, int epochs, Fit.Start start,
      TrainCommand.Callbacks cbs, String monitor, Optional<Path> exportTo, com.google.gson.JsonObject extra,
      String digest) {
    TrainCommand.finish(line, out, trainer, history, epochs, start, cbs.early(), monitor, exportTo, extra, digest);
  }

  private static TextDataset data(List<int[]> docs, TextDataset.Options options) {
    try {
      return TextDataset.of(docs, Gpt2Tokenizer.END_OF_TEXT, options);
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage());
    }
  }

  /** {@code finetune evaluate --task causal-lm}: loss, perplexity and next-token accuracy on text. */
  static int evaluate(CommandLine line, Path modelDir, PrintWriter out, PrintWriter err) {
    TextCorpus corpus;
    try {
      corpus = TextCorpus.read(paths(line.getOptionValue("data")), line.hasOption("strict"));
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage());
    }
    corpus.warnings().forEach(w -> err.println("warning: " + w));
    try (KerasSavedModel model = ModelFlags.open(modelDir, line)) {
      LanguageModels lm = LanguageModels.of(model);
      int length = (int) TrainCommand.longValue(line, "seq-len", Math.min(128, lm.positions()));
      if (length > lm.positions()) {
        throw new UsageException("--seq-len " + length + " exceeds the model's " + lm.positions() + " positions");
      }
      TextDataset data = data(tokens(corpus), new TextDataset.Options(length,
          (int) TrainCommand.longValue(line, "batch-size", 8), false, 0));
      TrainingPlan plan = TrainingPlan.builder().loss(LossSpec.CAUSAL_LM)
          .stage(org.finetune.train.Stage.of(org.finetune.train.Selector.parse("all"))).build();
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
