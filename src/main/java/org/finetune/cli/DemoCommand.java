package org.finetune.cli;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import org.apache.commons.cli.CommandLine;
import org.apache.commons.cli.Option;
import org.apache.commons.cli.Options;
import org.finetune.export.ExportOptions;
import org.finetune.export.ExportResult;
import org.finetune.export.Exporter;
import org.finetune.train.CsvLogger;
import org.finetune.train.Fit;
import org.finetune.train.ProgressLogger;

/**
 * {@code finetune demo}: the main job on the bundled default, no Python needed. A small VGG16
 * pretrained on handwritten digits 0-4 is fine-tuned on 20 labelled images per class of digits
 * 5-9 (a new head, then gradual unfreezing), compared with the same architecture trained from
 * scratch on the same images and budget, over several seeds; the fine-tuned model is exported.
 */
final class DemoCommand implements Command {
  /** Epochs per stage of the budgets compared by default; three stages each. */
  static final List<Integer> BUDGETS = List.of(1, 2, 4);
  /** Seeds per budget by default: with three, seed noise alone moved the 6-epoch mean by 10 points. */
  static final int SEEDS = 10;
  static final String LEGAL_MODEL = "savedmodels/generated/gpt2_fortunes/keras3_export/model";
  static final String GENERAL_VALIDATION = "savedmodels/generated/gpt2_fortunes/corpus/validation";
  static final String PRETRAINED = "savedmodels/digits_vgg16/keras3_export/model";
  static final String SCRATCH = "savedmodels/vgg16_small/keras3_export/model";
  static final String TRAIN = "testdata/digits/train";
  static final String TEST = "testdata/digits/test";

  @Override
  public String name() {
    return "demo";
  }

  @Override
  public String synopsis() {
    return "[--case digits|legal] [--out DIR] [--seeds N] [--epochs-per-stage N]";
  }

  @Override
  public String summary() {
    return "fine-tune the bundled digits model on a few images, compare with training from scratch, export it";
  }

  @Override
  public String details() {
    return "Uses the files under the finetune checkout (the launcher passes its location):\n"
        + PRETRAINED + " (a small VGG16 pretrained on digits 0-4 by scripts/make_digits.py),\n"
        + SCRATCH + " (the same architecture, untrained) and the digits 5-9 in\n"
        + TRAIN + " (20 per class) and " + TEST + ". Writes the export, history.csv and\n"
        + "the training curves (curves.png) and TensorBoard logs (logs/) under --out (default: demo/ in\n"
        + "the current directory), replacing an earlier demo.";
  }

  @Override
  public Options options() {
    Options o = new Options();
    o.addOption(Option.builder().longOpt("out").hasArg().argName("DIR").desc("where to write (default: demo)").build());
    o.addOption(Option.builder().longOpt("epochs-per-stage").hasArg().argName("N")
        .desc("run one budget: N epochs per unfreezing stage, three stages (default: the budgets " + BUDGETS
            + " in turn)").build());
    o.addOption(Option.builder().longOpt("case").hasArg().argName("NAME")
        .desc("digits (default): the image transfer task; legal: GPT-2 fine-tuned on licences, with forgetting")
        .build());
    o.addOption(Option.builder().longOpt("licences").hasArg().argName("DIR")
        .desc("legal: the licence texts (default: /usr/share/common-licenses)").build());
    o.addOption(Option.builder().longOpt("hold-out").hasArg().argName("NAME")
        .desc("legal: the licence held out for validation (default: Apache-2.0)").build());
    o.addOption(Option.builder().longOpt("seeds").hasArg().argName("N").desc("seeds to compare over (default: " + SEEDS + ")")
        .build());
    return o;
  }

  @Override
  public int run(CommandLine line, PrintWriter out, PrintWriter err) {
    Path home = Path.of(System.getProperty("finetune.home", "."));
    String which = line.getOptionValue("case", "digits");
    if (which.equals("legal")) {
      return legal(line, home, out);
    }
    if (!which.equals("digits")) {
      throw new UsageException("--case must be digits or legal, got '" + which + "'");
    }
    for (String required : List.of(PRETRAINED, SCRATCH, TRAIN, TEST)) {
      if (!Files.exists(home.resolve(required))) {
        throw new UsageException(home.resolve(required) + " is missing; run the demo from a finetune checkout"
            + " (scripts/finetune demo)");
      }
    }
    int seeds = (int) Flags.longValue(line, "seeds", SEEDS);
    if (seeds < 1) {
      throw new UsageException("--seeds must be >= 1");
    }
    Path outDir = Path.of(line.getOptionValue("out", "demo")).toAbsolutePath();
    List<Integer> budgets = line.hasOption("epochs-per-stage")
        ? List.of((int) Flags.longValue(line, "epochs-per-stage", 4)) : BUDGETS;
    try {
      Files.createDirectories(outDir);
    } catch (java.io.IOException e) {
      throw new UsageException("cannot create " + outDir + ": " + e.getMessage());
    }
    ExportResult[] exported = new ExportResult[1];
    for (int b = 0; b < budgets.size(); b++) {
      int perStage = budgets.get(b);
      boolean last = b == budgets.size() - 1;
      TransferExperiment experiment = new TransferExperiment(home.resolve(PRETRAINED), home.resolve(SCRATCH),
          home.resolve(TRAIN), home.resolve(TEST), 16, perStage);
      if (b == 0) {
        out.printf(Locale.ROOT, "finetune demo: transfer from digits 0-4 to digits 5-9, %d labelled images per class%n",
            experiment.train().items().size() / experiment.train().classes().size());
        out.printf(Locale.ROOT, "  pretrained model  %s%n  from scratch      %s (same architecture, untrained)%n"
            + "  training images   %s (%d, classes %s)%n  test images       %s (%d)%n", PRETRAINED, SCRATCH, TRAIN,
            experiment.train().items().size(), String.join(" ", experiment.train().classes()), TEST,
            experiment.test().items().size());
        out.println("  fine-tuning       a new head on block5_pool, then + block5, then + block4 (lower groups 2.6x"
            + " slower), Adam 1e-3");
        out.println("  from scratch      the same head, every layer training from the start, same images, epochs,"
            + " batch size and optimizer");
      }
      out.printf(Locale.ROOT, "%n== Budget: %d epochs (%d per stage), batch size 16%n", experiment.epochs(), perStage);
      List<TransferExperiment.Result> fine = new ArrayList<>();
      List<TransferExperiment.Result> scratch = new ArrayList<>();
      for (long seed : TransferExperiment.seeds(seeds)) {
        boolean show = last && seed == 1;
        List<Fit.Callback> callbacks = show ? List.of(new ProgressLogger(out, System.console() != null),
            new CsvLogger(outDir.resolve("history.csv"), false),
            new org.finetune.train.TensorBoardLogger(outDir.resolve("logs")),
            new org.finetune.train.CurvesPlot(outDir.resolve("curves.png"))) : List.of();
        TransferExperiment.Result f = experiment.fineTune(seed, callbacks, !show ? Optional.empty()
            : Optional.of(trainer -> exported[0] = Exporter.export(trainer, outDir.resolve("export"),
                ExportOptions.defaults().overwriting(true))));
        fine.add(f);
        TransferExperiment.Result s = experiment.scratch(seed);
        scratch.add(s);
        out.printf(Locale.ROOT, "seed %d: fine-tuned %.1f%% (%.1f s), from scratch %.1f%% (%.1f s)%n", seed,
            100 * f.accuracy(), f.seconds(), 100 * s.accuracy(), s.seconds());
        out.flush();
      }
      out.println();
      TransferExperiment.table(fine, scratch, out);
    }
    out.println();
    out.printf(Locale.ROOT, "Exported the fine-tuned model (last budget, seed 1) to %s (%.1f MB)%n", exported[0].dir(),
        exported[0].bytes() / 1e6);
    out.printf(Locale.ROOT, "Its history: %s, curves: %s, TensorBoard: tensorboard --logdir %s%n",
        outDir.resolve("history.csv"), outDir.resolve("curves.png"), outDir.resolve("logs"));
    out.println("Load it in Python: tf.saved_model.load(\"" + exported[0].dir() + "\").signatures[\"serving_default\"]");
    return ExitCode.OK;
  }

  /** The legal case study: its table goes to stdout and to legal.md under --out. */
  private static int legal(CommandLine line, Path home, PrintWriter out) {
    Path model = home.resolve(LEGAL_MODEL);
    Path general = home.resolve(GENERAL_VALIDATION);
    if (!Files.exists(model) || !Files.exists(general)) {
      throw new UsageException(model + " is missing: the general-English GPT-2 is generated by scripts/test (or"
          + " scripts/make_general_lm.py)");
    }
    Path licences = Path.of(line.getOptionValue("licences", "/usr/share/common-licenses"));
    Path outDir = Path.of(line.getOptionValue("out", "demo")).toAbsolutePath();
    out.printf(Locale.ROOT, "finetune demo --case legal: %s fine-tuned on %s%n", LEGAL_MODEL, licences);
    LegalStudy study;
    try {
      study = new LegalStudy(model, licences, line.getOptionValue("hold-out", "Apache-2.0"), general);
    } catch (IllegalArgumentException e) {
      throw new UsageException(Flags.message(e));
    }
    List<LegalStudy.Row> rows = study.run(out);
    java.io.StringWriter table = new java.io.StringWriter();
    try (PrintWriter w = new PrintWriter(table)) {
      LegalStudy.table(rows, w);
    }
    try {
      Files.createDirectories(outDir);
      Files.writeString(outDir.resolve("legal.md"), table.toString());
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException("cannot write " + outDir.resolve("legal.md"), e);
    }
    out.println("The table and samples: " + outDir.resolve("legal.md"));
    return ExitCode.OK;
  }
}
