package org.finetune.cli;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.HeatMapChart;
import org.knowm.xchart.HeatMapChartBuilder;

/** A confusion matrix as a heat map PNG (rows: true class, columns: predicted), drawn headless. */
final class ConfusionPlot {
  private ConfusionPlot() {}

  static void write(List<String> classes, long[][] confusion, Path file) {
    System.setProperty("java.awt.headless", "true");
    HeatMapChart chart = new HeatMapChartBuilder().width(120 + 60 * classes.size()).height(100 + 50 * classes.size())
        .title("confusion matrix").xAxisTitle("predicted").yAxisTitle("true").build();
    chart.getStyler().setShowValue(true);
    List<Number[]> cells = new ArrayList<>();
    for (int t = 0; t < classes.size(); t++) {
      for (int p = 0; p < classes.size(); p++) {
        // Row 0 of the picture is the first class, so true classes run top to bottom.
        cells.add(new Number[] {p, classes.size() - 1 - t, confusion[t][p]});
      }
    }
    List<String> reversed = new ArrayList<>(classes);
    java.util.Collections.reverse(reversed);
    chart.addSeries("counts", classes, reversed, cells);
    savePng(chart, file);
  }

  /** Writes a chart as a PNG, creating its folder. */
  static void savePng(org.knowm.xchart.internal.chartpart.Chart<?, ?> chart, Path file) {
    try {
      if (file.getParent() != null) {
        Files.createDirectories(file.getParent());
      }
      BitmapEncoder.saveBitmap(chart, file.toString(), BitmapEncoder.BitmapFormat.PNG);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write " + file + ": " + e.getMessage(), e);
    }
  }
}
