package org.finetune.cli;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import org.finetune.train.Fit;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;

/**
 * The transfer experiment's figures: per budget and arm the mean held-out accuracy over seeds with
 * a 95% interval (Student's t), the fine-tuned arm's gain over training from scratch with its
 * interval (paired by seed: the same images), the rates the arms picked, how many epochs and
 * seconds each arm took to come within 2 points of its own best, and the charts.
 */
final class TransferReport {
  /** Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom. */
  private static final double[] T95 = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201,
      2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052,
      2.048, 2.045, 2.042};

  private TransferReport() {}

  /** A mean and the half-width of its 95% interval (NaN for one value). */
  record Estimate(double mean, double half) {
    String points() {
      return String.format(Locale.ROOT, "%5.1f%%", 100 * mean) + (Double.isNaN(half) ? "       "
          : String.format(Locale.ROOT, " ± %4.1f", 100 * half));
    }
  }

  static Estimate estimate(List<Double> values) {
    double mean = values.stream().mapToDouble(Double::doubleValue).average().orElse(Double.NaN);
    if (values.size() < 2) {
      return new Estimate(mean, Double.NaN);
    }
    double ss = values.stream().mapToDouble(v -> (v - mean) * (v - mean)).sum();
    double sd = Math.sqrt(ss / (values.size() - 1));
    int df = values.size() - 1;
    double t = df <= T95.length ? T95[df - 1] : 1.960;
    return new Estimate(mean, t * sd / Math.sqrt(values.size()));
  }

  /** The runs of one budget, by arm, in seed order. */
  static Map<TransferExperiment.Arm, List<TransferExperiment.Run>> byArm(List<TransferExperiment.Run> runs, int epochs) {
    Map<TransferExperiment.Arm, List<TransferExperiment.Run>> out = new TreeMap<>();
    runs.stream().filter(r -> r.epochs() == epochs).forEach(r -> out.computeIfAbsent(r.arm(), k -> new ArrayList<>())
        .add(r));
    out.values().forEach(l -> l.sort(java.util.Comparator.comparingLong(TransferExperiment.Run::seed)));
    return out;
  }

  /** Prints the table: one row per budget, each arm's accuracy, and fine-tuned minus from scratch. */
  static void table(List<TransferExperiment.Run> runs, List<Integer> budgets, PrintWriter out) {
    List<TransferExperiment.Arm> arms = runs.stream().map(TransferExperiment.Run::arm).distinct().sorted().toList();
    StringBuilder header = new StringBuilder(String.format(Locale.ROOT, "%-8s", "epochs"));
    arms.forEach(a -> header.append(String.format(Locale.ROOT, " %-20s", a.label)));
    header.append(" fine-tuned minus from scratch");
    out.println(header);
    for (int epochs : budgets) {
      Map<TransferExperiment.Arm, List<TransferExperiment.Run>> by = byArm(runs, epochs);
      StringBuilder row = new StringBuilder(String.format(Locale.ROOT, "%-8d", epochs));
      for (TransferExperiment.Arm a : arms) {
        row.append(String.format(Locale.ROOT, " %-20s", estimate(accuracies(by.get(a))).points()));
      }
      List<TransferExperiment.Run> fine = by.get(TransferExperiment.Arm.FINE_TUNED);
      List<TransferExperiment.Run> scratch = by.get(TransferExperiment.Arm.SCRATCH);
      if (fine != null && scratch != null && fine.size() == scratch.size()) {
        List<Double> gain = new ArrayList<>();
        for (int i = 0; i < fine.size(); i++) {
          gain.add(fine.get(i).accuracy() - scratch.get(i).accuracy());
        }
        Estimate g = estimate(gain);
        row.append(String.format(Locale.ROOT, " %+.1f points", 100 * g.mean()))
            .append(Double.isNaN(g.half()) ? "" : String.format(Locale.ROOT, " (95%%: %+.1f to %+.1f)",
                100 * (g.mean() - g.half()), 100 * (g.mean() + g.half())));
      }
      out.println(row);
    }
    out.println("(held-out accuracy, mean over " + runs.stream().mapToLong(TransferExperiment.Run::seed).distinct()
        .count() + " seeds ± the half-width of its 95% interval; the gain's interval is over the seeds' differences)");
    out.println("Learning rates picked (by budget, per seed):");
    for (int epochs : budgets) {
      byArm(runs, epochs).forEach((arm, rs) -> out.printf(Locale.ROOT, "  %2d epochs  %-20s %s%n", epochs, arm.label,
          String.join(" ", rs.stream().map(r -> rate(r.rate())).toList())));
    }
  }

  /**
   * Per arm, at the largest budget: the first epoch at which the mean held-out accuracy comes within
   * 2 points of the best mean it reaches, and the mean training seconds up to that epoch.
   */
  static void timeToAccuracy(List<TransferExperiment.Run> runs, int epochs, PrintWriter out) {
    out.printf(Locale.ROOT, "Time to come within 2 points of its own best (%d-epoch runs, mean over seeds):%n", epochs);
    byArm(runs, epochs).forEach((arm, rs) -> {
      double[] curve = meanCurve(rs, "val_accuracy");
      double best = java.util.Arrays.stream(curve).max().orElse(Double.NaN);
      int at = 0;
      while (at < curve.length - 1 && curve[at] < best - 0.02) {
        at++;
      }
      int upTo = at;
      double seconds = rs.stream().mapToDouble(r -> r.epochSeconds().subList(0, upTo + 1).stream()
          .mapToDouble(Double::doubleValue).sum()).average().orElse(Double.NaN);
      out.printf(Locale.ROOT, "  %-20s best %.1f%% (epoch %d); within 2 points at epoch %d, %.1f s of training%n",
          arm.label, 100 * best, argmax(curve) + 1, at + 1, seconds);
    });
  }

  /**
   * One chart per budget: held-out accuracy against the epoch, each arm's mean over seeds with its
   * 95% interval as thin lines either side.
   */
  static void comparisonChart(List<TransferExperiment.Run> runs, int epochs, String title, Path file) {
    System.setProperty("java.awt.headless", "true");
    XYChart chart = new XYChartBuilder().width(760).height(440).title(title).xAxisTitle("epoch")
        .yAxisTitle("held-out accuracy").build();
    chart.getStyler().setMarkerSize(4);
    byArm(runs, epochs).forEach((arm, rs) -> {
      List<Double> x = new ArrayList<>();
      List<Double> mean = new ArrayList<>();
      List<Double> low = new ArrayList<>();
      List<Double> high = new ArrayList<>();
      for (int e = 0; e < epochs; e++) {
        int epoch = e;
        Estimate est = estimate(rs.stream().map(r -> r.history().get(epoch).logs().get("val_accuracy")).toList());
        x.add(e + 1.0);
        mean.add(est.mean());
        double half = Double.isNaN(est.half()) ? 0 : est.half();
        low.add(est.mean() - half);
        high.add(est.mean() + half);
      }
      XYSeries s = chart.addSeries(arm.label, x, mean);
      s.setXYSeriesRenderStyle(XYSeries.XYSeriesRenderStyle.Line);
      for (Map.Entry<String, List<Double>> band : Map.of("low", low, "high", high).entrySet()) {
        XYSeries b = chart.addSeries(arm.label + " 95% " + band.getKey(), x, band.getValue());
        b.setXYSeriesRenderStyle(XYSeries.XYSeriesRenderStyle.Line);
        b.setMarker(org.knowm.xchart.style.markers.SeriesMarkers.NONE);
        b.setLineColor(s.getLineColor() == null ? java.awt.Color.GRAY : s.getLineColor());
        b.setLineWidth(0.6f);
        b.setShowInLegend(false);
      }
    });
    ConfusionPlot.savePng(chart, file);
  }

  /**
   * One run's training and held-out loss and accuracy against the epoch, with a line where each
   * unfreezing stage begins.
   */
  static void curves(TransferExperiment.Run run, Path file) {
    System.setProperty("java.awt.headless", "true");
    XYChart chart = new XYChartBuilder().width(760).height(440)
        .title(run.arm().label + ", seed " + run.seed() + ", " + run.epochs() + " epochs (learning rate "
            + rate(run.rate()) + ")").xAxisTitle("epoch").build();
    chart.getStyler().setMarkerSize(4);
    Map<String, String> names = new LinkedHashMap<>();
    names.put("loss", "training loss");
    names.put("val_loss", "held-out loss");
    names.put("accuracy", "training accuracy");
    names.put("val_accuracy", "held-out accuracy");
    List<Double> x = new ArrayList<>();
    run.history().forEach(e -> x.add(e.epoch() + 1.0));
    names.forEach((key, label) -> {
      List<Double> y = run.history().stream().map(e -> e.logs().get(key)).toList();
      if (y.stream().allMatch(java.util.Objects::nonNull)) {
        chart.addSeries(label, x, y).setXYSeriesRenderStyle(XYSeries.XYSeriesRenderStyle.Line);
      }
    });
    for (int i = 1; i < run.history().size(); i++) {
      Fit.Epoch e = run.history().get(i);
      if (e.stage() != run.history().get(i - 1).stage()) {
        chart.addAnnotation(new org.knowm.xchart.AnnotationLine(e.epoch() + 0.5, true, false));
        chart.addAnnotation(new org.knowm.xchart.AnnotationText("stage " + (e.stage() + 1), e.epoch() + 0.5, 0.05,
            false));
      }
    }
    ConfusionPlot.savePng(chart, file);
  }

  static double[] meanCurve(List<TransferExperiment.Run> runs, String key) {
    int n = runs.get(0).history().size();
    double[] out = new double[n];
    for (int e = 0; e < n; e++) {
      int epoch = e;
      out[e] = runs.stream().mapToDouble(r -> r.history().get(epoch).logs().get(key)).average().orElse(Double.NaN);
    }
    return out;
  }

  static List<Double> accuracies(List<TransferExperiment.Run> runs) {
    return runs == null ? List.of() : runs.stream().map(TransferExperiment.Run::accuracy).toList();
  }

  static String rate(double r) {
    return String.format(Locale.ROOT, "%.0e", r).replace("e-0", "e-");
  }

  private static int argmax(double[] v) {
    int best = 0;
    for (int i = 1; i < v.length; i++) {
      if (v[i] > v[best]) {
        best = i;
      }
    }
    return best;
  }
}
