package org.finetune.train;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/** Keras's {@code CSVLogger}: one row per epoch ({@code epoch}, then the logs), appended when resuming. */
public final class CsvLogger implements Fit.Callback {
  private final Path file;
  private final boolean append;
  private List<String> columns;

  public CsvLogger(Path file, boolean append) {
    this.file = file;
    this.append = append;
  }

  @Override
  public void onEpochEnd(Fit.Control c, Fit.Epoch epoch) {
    try {
      if (columns == null) {
        columns = new ArrayList<>(epoch.logs().keySet());
        if (!(append && Files.isRegularFile(file))) {
          if (file.getParent() != null) {
            Files.createDirectories(file.getParent());
          }
          Files.writeString(file, "epoch," + String.join(",", columns) + "\n", StandardCharsets.UTF_8);
        }
      }
      StringBuilder row = new StringBuilder(Integer.toString(epoch.epoch()));
      for (String k : columns) {
        Double v = epoch.logs().get(k);
        row.append(',').append(v == null ? "" : String.format(Locale.ROOT, "%.8g", v));
      }
      Files.writeString(file, row + "\n", StandardCharsets.UTF_8, StandardOpenOption.APPEND);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write the history " + file + ": " + e.getMessage(), e);
    }
  }
}
