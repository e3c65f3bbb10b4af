package org.finetune.train;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;

/**
 * The training curves as a PNG, redrawn after every epoch: loss (training and validation) on one
 * chart and every other metric on a second, against the epoch. Drawn headless.
 */
public final class CurvesPlot implements Fit.Callback {
  private final Path file;
  private final List<Fit.Epoch> epochs = new ArrayList<>();

  public CurvesPlot(Path file) {
    this.file = file;
    System.setProperty("java.awt.headless", "true");
  }

  @Override
  public void onEpochEnd(Fit.Control c, Fit.Epoch epoch) {
    epochs.add(epoch);
    write(epochs, file);
  }

  /** Writes {@code file} (and {@code <name>_metrics.png} beside it when there are metrics) from a history. */
  public static void write(List<Fit.Epoch> history, Path file) {
    Map<String, List<Double>> series = new LinkedHashMap<>();
    List<Double> x = new ArrayList<>();
    for (Fit.Epoch e : history) {
      x.add((double) e.epoch() + 1);
      e.logs().forEach((k, v) -> {
        if (!k.equals("lr")) {
          series.computeIfAbsent(k, key -> new ArrayList<>()).add(v);
        }
      });
    }
    try {
      if (file.getParent() != null) {
        Files.createDirectories(file.getParent());
      }
      XYChart loss = chart("loss", x, series, k -> k.equals("loss") || k.equals("val_loss"));
      BitmapEncoder.saveBitmap(loss, file.toString(), BitmapEncoder.BitmapFormat.PNG);
      if (series.keySet().stream().anyMatch(k -> !k.equals("loss") && !k.equals("val_loss"))) {
        String name = file.getFileName().toString().replaceFirst("\\.png$", "");
        XYChart metrics = chart("metrics", x, series, k -> !k.equals("loss") && !k.equals("val_loss"));
        BitmapEncoder.saveBitmap(metrics, file.resolveSibling(name + "_metrics.png").toString(),
            BitmapEncoder.BitmapFormat.PNG);
      }
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write the curves " + file + ": " + e.getMessage(), e);
    }
  }

  private static XYChart chart(String title, List<Double> x, Map<String, List<Double>> series,
      java.util.function.Predicate<String> which) {
    XYChart chart = new XYChartBuilder().width(720).height(420).title(title).xAxisTitle("epoch").build();
    chart.getStyler().setMarkerSize(5);
    series.forEach((k, v) -> {
      if (which.test(k) && v.size() == x.size()) {
        XYSeries s = chart.addSeries(k, x, v);
        s.setXYSeriesRenderStyle(XYSeries.XYSeriesRenderStyle.Line);
      }
    });
    return chart;
  }
}
