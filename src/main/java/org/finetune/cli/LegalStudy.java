package org.finetune.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.stream.Stream;
import org.finetune.data.TextCorpus;
import org.finetune.data.TextDataset;
import org.finetune.model.KerasSavedModel;
import org.finetune.text.Gpt2Tokenizer;
import org.finetune.text.TextGenerator;
import org.finetune.train.Fit;
import org.finetune.train.GradualUnfreezing;
import org.finetune.train.LossSpec;
import org.finetune.train.OptimizerSpec;
import org.finetune.train.ProgressLogger;
import org.finetune.train.Selector;
import org.finetune.train.Stage;
import org.finetune.train.Trainer;
import org.finetune.train.TrainingPlan;

/**
 * The seed's legal case study, measured: a small GPT-2 pretrained on general English (Debian's
 * fortunes, by {@code scripts/make_general_lm.py}) is fine-tuned on the licences every Debian
 * machine has in {@code /usr/share/common-licenses}, one licence held out, three ways with the
 * same budget: every layer at once, gradual unfreezing from the top (one more group per epoch,
 * lower groups 2.6x slower), every layer with L2-SP pulling the weights back to the pretrained
 * ones, and low-rank adapters (rank {@link #LORA_RANK}) on the attention query and value kernels
 * with everything else frozen, as keras-hub's {@code enable_lora}. For each: perplexity on the held-out licence (what fine-tuning is for) and on
 * held-out fortunes (what it forgets), before and after, and a sampled paragraph.
 */
final class LegalStudy {
  /** Fixed before measuring: Adam at 5e-4, 3 epochs of blocks of 128 tokens, 8 per batch. */
  static final double LEARNING_RATE = 5e-4;
  static final int EPOCHS = 3;
  static final int LENGTH = 128;
  static final int BATCH = 8;
  static final double L2SP = 0.1;
  /** The adapters' rank (alpha = rank: Keras's scale of 1), fixed with the arm, as the issue asked. */
  static final int LORA_RANK = 8;
  static final String PROMPT = "Permission is hereby granted";

  /** One arm's outcome. */
  record Row(String arm, double legalBefore, double legalAfter, double generalBefore, double generalAfter,
      String sample, double seconds) {}

  private final Path model;
  private final TextCorpus legalTrain;
  private final TextCorpus legalValidation;
  private final TextCorpus generalValidation;

  LegalStudy(Path model, Path licences, String heldOut, Path generalValidation) {
    this.model = model;
    List<Path> files;
    try (Stream<Path> s = Files.list(licences)) {
      files = s.filter(Files::isRegularFile).sorted().toList();
    } catch (IOException e) {
      throw new UncheckedIOException("cannot list " + licences, e);
    }
    Path held = licences.resolve(heldOut);
    if (!files.contains(held)) {
      throw new UsageException("no licence " + heldOut + " in " + licences + " to hold out");
    }
    List<Path> train = new ArrayList<>(files);
    train.remove(held);
    this.legalValidation = TextCorpus.read(List.of(held), false);
    // Symbolic links (GPL -> GPL-3) count once; the held-out file's aliases stay out of training.
    this.legalTrain = TextCorpus.read(train.stream().filter(p -> !sameFile(p, held)).toList(), false);
    this.generalValidation = TextCorpus.read(List.of(generalValidation), false);
  }

  private static boolean sameFile(Path a, Path b) {
    try {
      return Files.isSameFile(a, b);
    } catch (IOException e) {
      return false;
    }
  }

  static TextDataset dataset(TextCorpus corpus, boolean shuffle) {
    return TextDataset.of(Gpt2Tokenizer.get().encode(corpus), Gpt2Tokenizer.END_OF_TEXT,
        new TextDataset.Options(LENGTH, BATCH, shuffle, 1234));
  }

  /** The arms, by name. */
  static List<String> arms() {
    return List.of("full fine-tuning", "gradual unfreezing", "L2-SP (" + L2SP + ")", "LoRA (rank " + LORA_RANK + ")");
  }

  private static TrainingPlan plan(String arm, org.finetune.job.ModelFamily lm) {
    TrainingPlan.Builder b = TrainingPlan.builder().loss(LossSpec.CAUSAL_LM)
        .optimizer(new OptimizerSpec.Adam(LEARNING_RATE, 0.9, 0.999, 1e-7));
    if (arm.startsWith("gradual")) {
      b.stages(GradualUnfreezing.fromTop(lm.groups().stream().map(Selector::parse).toList(),
          GradualUnfreezing.DEFAULT_FACTOR));
    } else if (arm.startsWith("LoRA")) {
      b.lowRank(org.finetune.train.LowRankSpec.of(LORA_RANK)).stage(Stage.of(new Selector.Adapters()));
    } else {
      b.stage(Stage.of(Selector.parse("all")));
    }
    if (arm.startsWith("L2-SP")) {
      b.l2sp(L2SP);
    }
    return b.build();
  }

  /** Runs every arm; prints progress and the table; returns the rows. */
  List<Row> run(PrintWriter out) {
    TextDataset train = dataset(legalTrain, true);
    TextDataset legal = dataset(legalValidation, false);
    TextDataset general = dataset(generalValidation, false);
    out.printf(Locale.ROOT, "legal training text: %d licences, %d tokens; held out: %s, %d tokens; general held-out"
        + " text: %d tokens%n", legalTrain.documents().size(), train.tokens(),
        legalValidation.documents().get(0).file().getFileName(), legal.tokens(), general.tokens());
    List<Row> rows = new ArrayList<>();
    for (String arm : arms()) {
      long start = System.nanoTime();
      try (KerasSavedModel m = KerasSavedModel.open(model)) {
        org.finetune.job.ModelFamily lm = org.finetune.job.ModelFamily.detect(m);
        TrainingPlan plan = plan(arm, lm);
        try (Trainer trainer = new Trainer(m, plan)) {
          double legalBefore = perplexity(trainer, legal);
          double generalBefore = perplexity(trainer, general);
          out.printf(Locale.ROOT, "%n== %s%n", arm);
          out.flush();
          Fit.run(trainer, Fit.tokens(train), Optional.of(Fit.tokens(legal)),
              new Fit.Options(EPOCHS, plan.stages().size() > 1 ? OptionalInt.of(1) : OptionalInt.empty()),
              List.of(new ProgressLogger(out, System.console() != null)), Fit.Start.BEGINNING);
          double legalAfter = perplexity(trainer, legal);
          double generalAfter = perplexity(trainer, general);
          TextGenerator g = new TextGenerator(trainer::predict, org.finetune.job.LanguageModelInput.of(m).positions(), Gpt2Tokenizer.END_OF_TEXT);
          int[] ids = g.generate(Gpt2Tokenizer.get().encode(PROMPT), 60, new TextGenerator.Sampling(0.8, 40, 1, 1),
              t -> { });
          String sample = PROMPT + Gpt2Tokenizer.get().decode(java.util.Arrays.stream(ids)
              .filter(t -> t != Gpt2Tokenizer.END_OF_TEXT).toArray());
          rows.add(new Row(arm, legalBefore, legalAfter, generalBefore, generalAfter, sample,
              (System.nanoTime() - start) / 1e9));
        }
      }
    }
    table(rows, out);
    return rows;
  }

  static double perplexity(Trainer trainer, TextDataset data) {
    return Math.exp(Fit.evaluate(trainer, Fit.tokens(data), 0).values("").get("loss"));
  }

  static void table(List<Row> rows, PrintWriter out) {
    out.println();
    out.println("| arm | legal held-out perplexity | change | general held-out perplexity | change | time |");
    out.println("|---|---|---|---|---|---|");
    for (Row r : rows) {
      out.printf(Locale.ROOT, "| %s | %.1f -> %.1f | %+.1f%% | %.1f -> %.1f | %+.1f%% | %.0f s |%n", r.arm(),
          r.legalBefore(), r.legalAfter(), 100 * (r.legalAfter() / r.legalBefore() - 1), r.generalBefore(),
          r.generalAfter(), 100 * (r.generalAfter() / r.generalBefore() - 1), r.seconds());
    }
    out.println();
    for (Row r : rows) {
      out.printf(Locale.ROOT, "%s, sampled (temperature 0.8, top-k 40, seed 1; whitespace runs shown as one space):"
          + "%n  %s%n", r.arm(), r.sample().replaceAll("\\s+", " ").strip());
    }
    out.flush();
  }
}
