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
import org.finetune.data.ImageDataset;
import org.finetune.export.ExportOptions;
import org.finetune.export.ExportResult;
import org.finetune.export.Exporter;
import org.finetune.train.CsvLogger;
import org.finetune.train.Fit;

/**
 * {@code finetune demo}: the main job on bundled real images, no Python needed. A small VGG16
 * pretrained on Fashion-MNIST classes 0-4 is fine-tuned on 20 labelled images per class of
 * classes 5-9 (a new head, then gradual unfreezing), against the same model with its base frozen
 * and the same architecture trained from scratch, each at the learning rate it picks, over several
 * seeds and budgets; the fine-tuned model is exported with its curves and confusion matrix.
 */
final class DemoCommand implements Command {
  /** The budgets (epochs) compared by default: each a multiple of the three unfreezing stages. */
  static final List<Integer> BUDGETS = List.of(6, 12);
  /** Seeds by default: the draws of training images committed under {@link #FASHION_TRAIN}. */
  static final int SEEDS = 3;
  static final String LEGAL_MODEL = "savedmodels/generated/gpt2_fortunes/keras3_export/model";
  static final String GENERAL_VALIDATION = "savedmodels/generated/gpt2_fortunes/corpus/validation";
  static final String FASHION_MODEL = "savedmodels/fashion_vgg16/keras3_export/model";
  static final String FASHION_TRAIN = "testdata/fashion/train";
  static final String FASHION_TEST = "testdata/fashion/test";
  static final String DIGITS_MODEL = "savedmodels/digits_vgg16/keras3_export/model";
  static final String SCRATCH = "savedmodels/vgg16_small/keras3_export/model";
  static final String DIGITS_TRAIN = "testdata/digits/train";
  static final String DIGITS_TEST = "testdata/digits/test";

  @Override
  public String name() {
    return "demo";
  }

  @Override
  public String synopsis() {
    return "[--case fashion|digits|legal] [--out DIR] [--seeds N] [--budgets E,E,...] [--full]";
  }

  @Override
  public String summary() {
    return "fine-tune a bundled model on a few real images, compare with feature extraction and training from"
        + " scratch, export it";
  }

  @Override
  public String details() {
    return "Uses the files under the finetune checkout (the launcher passes its location):\n"
        + FASHION_MODEL + " (a small VGG16 pretrained on Fashion-MNIST classes 0-4 by\n"
        + "scripts/make_fashion.py), " + SCRATCH + " (the same architecture, untrained),\n"
        + FASHION_TRAIN + "/seed<k> (20 images per class of classes 5-9, drawn per seed) and\n"
        + FASHION_TEST + ". Each arm picks its learning rate from 1e-4, 3e-4, 1e-3, 3e-3 on a quarter of\n"
        + "its training images. Writes the export, history.csv, curves.png (the exported run),\n"
        + "comparison_<epochs>.png (held-out accuracy per epoch, each arm's mean and 95% interval),\n"
        + "confusion.png and TensorBoard logs (logs/) under --out (default: demo/ in the current\n"
        + "directory), replacing an earlier demo. --case digits runs the same study on scikit-learn's\n"
        + "digits (" + DIGITS_MODEL + ").";
  }

  @Override
  public Options options() {
    Options o = new Options();
    o.addOption(Option.builder().longOpt("out").hasArg().argName("DIR").desc("where to write (default: demo)").build());
    o.addOption(Option.builder().longOpt("budgets").hasArg().argName("E,E,...")
        .desc("epochs per run, each a multiple of 3 (default: " + BUDGETS.toString().replaceAll("[\\[\\] ]", "") + ")")
        .build());
    o.addOption(Option.builder().longOpt("case").hasArg().argName("NAME")
        .desc("fashion (default): the image transfer task; digits: the same on 8x8 digit scans; legal: GPT-2"
            + " fine-tuned on licences, with forgetting").build());
    o.addOption(Option.builder().longOpt("licences").hasArg().argName("DIR")
        .desc("legal: the licence texts (default: /usr/share/common-licenses)").build());
    o.addOption(Option.builder().longOpt("hold-out").hasArg().argName("NAME")
        .desc("legal: the licence held out for validation (default: Apache-2.0)").build());
    o.addOption(Option.builder().longOpt("seeds").hasArg().argName("N").desc("seeds to compare over (default: " + SEEDS
        + "; " + TransferProtocol.SEEDS + " with --full)").build());
    o.addOption(Option.builder().longOpt("full").desc("fashion: the full protocol on the npm data that"
        + " scripts/make_fashion.py converts: both targets, " + TransferProtocol.SEEDS + " seeds, budgets "
        + TransferProtocol.BUDGETS + ", time to accuracy and forgetting; writes protocol.md (hours on 2 cores)").build());
    return o;
  }

  @Override
  public int run(CommandLine line, PrintWriter out, PrintWriter err) {
    Path home = Path.of(System.getProperty("finetune.home", "."));
    String which = line.getOptionValue("case", "fashion");
    if (which.equals("legal")) {
      return legal(line, home, out);
    }
    if (!which.equals("fashion") && !which.equals("digits")) {
      throw new UsageException("--case must be fashion, digits or legal, got '" + which + "'");
    }
    boolean fashion = which.equals("fashion");
    if (line.hasOption("full")) {
      if (!fashion) {
        throw new UsageException("--full runs the fashion case's protocol; leave out --case " + which);
      }
      Path outDir = Path.of(line.getOptionValue("out", "demo")).toAbsolutePath();
      int seeds = (int) Flags.longValue(line, "seeds", TransferProtocol.SEEDS);
      return TransferProtocol.run(home, outDir, seeds, line.hasOption("budgets") ? budgets(line)
          : TransferProtocol.BUDGETS, out);
    }
    String model = fashion ? FASHION_MODEL : DIGITS_MODEL;
    String train = fashion ? FASHION_TRAIN : DIGITS_TRAIN;
    String test = fashion ? FASHION_TEST : DIGITS_TEST;
    for (String required : List.of(model, SCRATCH, train, test)) {
      if (!Files.exists(home.resolve(required))) {
        throw new UsageException(home.resolve(required) + " is missing; run the demo from a finetune checkout"
            + " (scripts/finetune demo)");
      }
    }
    int seeds = (int) Flags.longValue(line, "seeds", SEEDS);
    if (seeds < 1) {
      throw new UsageException("--seeds must be >= 1");
    }
    List<Integer> budgets = budgets(line);
    Path outDir = Path.of(line.getOptionValue("out", "demo")).toAbsolutePath();
    try {
      Files.createDirectories(outDir);
    } catch (java.io.IOException e) {
      throw new UsageException("cannot create " + outDir + ": " + e.getMessage());
    }
    TransferExperiment experiment = new TransferExperiment(home.resolve(model), home.resolve(SCRATCH),
        home.resolve(train), home.resolve(test), 16);
    for (long seed : TransferExperiment.seeds(seeds)) {
      if (fashion && !experiment.drawn(seed)) {
        throw new UsageException("--seeds " + seeds + ": " + home.resolve(train).resolve("seed" + seed) + " is missing;"
            + " the bundled draws are seeds 1-" + SEEDS);
      }
    }
    String task = fashion ? "Fashion-MNIST classes 0-4 to classes 5-9" : "digits 0-4 to digits 5-9";
    out.printf(Locale.ROOT, "finetune demo: transfer from %s, %d labelled images per class%n", task,
        experiment.train(1).items().size() / experiment.train(1).classes().size());
    out.printf(Locale.ROOT, "  pretrained model    %s%n  from scratch        %s (same architecture, untrained)%n"
        + "  training images     %s%s (classes %s)%n  held-out images     %s (%d)%n", model, SCRATCH, train,
        fashion ? "/seed<k>, drawn per seed" : "", String.join(" ", experiment.test().classes()), test,
        experiment.test().items().size());
    out.println("  fine-tuned          a new head on block5_pool, then + block5, then + block4 (lower groups 2.6x"
        + " slower), Adam");
    out.println("  feature extraction  the pretrained base frozen, the same head alone");
    out.println("  from scratch        the same head, every layer training from the start");
    out.println("  every arm           batch size 16, no augmentation; picks its learning rate from 1e-4 3e-4 1e-3"
        + " 3e-3 by accuracy on a quarter of its training images, then trains on all of them");
    out.flush();
    ExportResult[] exported = new ExportResult[1];
    List<TransferExperiment.Run> runs = new ArrayList<>();
    int last = budgets.get(budgets.size() - 1);
    for (long seed : TransferExperiment.seeds(seeds)) {
      for (TransferExperiment.Arm arm : TransferProtocol.ARMS) {
        boolean show = seed == 1 && arm == TransferExperiment.Arm.FINE_TUNED;
        java.util.function.IntFunction<List<Fit.Callback>> callbacks = epochs -> show && epochs == last
            ? List.of(new CsvLogger(outDir.resolve("history.csv"), false),
                new org.finetune.train.TensorBoardLogger(outDir.resolve("logs"))) : List.of();
        List<TransferExperiment.Run> r = experiment.run(arm, seed, budgets, callbacks, !show ? Optional.empty()
            : Optional.of(trainer -> {
              exported[0] = Exporter.export(trainer, outDir.resolve("export"), ExportOptions.defaults().overwriting(true));
              confusion(trainer, experiment, outDir.resolve("confusion.png"));
            }));
        runs.addAll(r);
        for (TransferExperiment.Run run : r) {
          out.printf(Locale.ROOT, "seed %d, %2d epochs: %-20s %5.1f%% (learning rate %s; training loss %.3f -> %.3f;"
              + " %.1f s of training)%n", seed, run.epochs(), arm.label, 100 * run.accuracy(),
              TransferReport.rate(run.rate()), run.history().get(0).logs().get("loss"),
              run.history().get(run.history().size() - 1).logs().get("loss"),
              run.epochSeconds().stream().mapToDouble(Double::doubleValue).sum());
        }
        out.flush();
      }
    }
    out.println();
    TransferReport.table(runs, budgets, out);
    out.println();
    TransferReport.timeToAccuracy(runs, last, out);
    for (int epochs : budgets) {
      TransferReport.comparisonChart(runs, epochs, task + ", " + epochs + " epochs",
          outDir.resolve("comparison_" + epochs + ".png"));
    }
    TransferExperiment.Run shown = runs.stream().filter(r -> r.seed() == 1 && r.epochs() == last
        && r.arm() == TransferExperiment.Arm.FINE_TUNED).findFirst().orElseThrow();
    TransferReport.curves(shown, outDir.resolve("curves.png"));
    out.println();
    out.printf(Locale.ROOT, "Exported the fine-tuned model (seed 1, %d epochs) to %s (%.1f MB)%n", last,
        exported[0].dir(), exported[0].bytes() / 1e6);
    out.printf(Locale.ROOT, "Its history: %s, curves: %s, confusion matrix: %s, TensorBoard: tensorboard --logdir %s%n",
        outDir.resolve("history.csv"), outDir.resolve("curves.png"), outDir.resolve("confusion.png"),
        outDir.resolve("logs"));
    out.printf(Locale.ROOT, "Held-out accuracy per epoch, each arm: %s%n", String.join(", ", budgets.stream()
        .map(e -> outDir.resolve("comparison_" + e + ".png").toString()).toList()));
    out.println("Load it in Python: tf.saved_model.load(\"" + exported[0].dir() + "\").signatures[\"serving_default\"]");
    return ExitCode.OK;
  }

  private static List<Integer> budgets(CommandLine line) {
    if (!line.hasOption("budgets")) {
      return BUDGETS;
    }
    List<Integer> out = new ArrayList<>();
    for (String part : line.getOptionValue("budgets").split(",")) {
      int epochs;
      try {
        epochs = Integer.parseInt(part.trim());
      } catch (NumberFormatException e) {
        throw new UsageException("--budgets takes epochs separated by commas (e.g. 6,12), got '" + part + "'");
      }
      if (epochs < 3 || epochs % 3 != 0) {
        throw new UsageException("--budgets: " + epochs + " is not a multiple of 3 (the unfreezing stages) of at least 3");
      }
      out.add(epochs);
    }
    return out;
  }

  /** The exported run's confusion matrix on the held-out images. */
  private static void confusion(org.finetune.train.Trainer trainer, TransferExperiment experiment, Path file) {
    ImageDataset.Options options = ImageDataset.Options.of(32, 32, org.finetune.data.ImageOps.Preprocess.CAFFE, 64)
        .shuffled(false);
    String input = trainer.model().info().selectedSignature().inputs().get(0).key();
    try (ImageDataset data = ImageDataset.open(experiment.test().items(), options)) {
      List<ImageClassifier.Prediction> predictions =
          ImageClassifier.run(data, images -> trainer.predict(java.util.Map.of(input, images)));
      int n = experiment.test().classes().size();
      long[][] counts = new long[n][n];
      predictions.forEach(p -> counts[p.label()][p.top()]++);
      ConfusionPlot.write(experiment.test().classes(), counts, file);
    }
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
