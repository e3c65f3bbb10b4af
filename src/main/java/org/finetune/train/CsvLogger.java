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

/**
 * Keras's {@code CSVLogger}: one row per epoch ({@code epoch}, then the logs), appended when
 * resuming. A resumed run first drops the rows of the epochs it runs again, so that a run killed
 * after writing an epoch's row but before its checkpoint has every epoch once; placed before the
 * checkpoint callback, no kill leaves an epoch without its row.
 */
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
        List<String> existing = append && Files.isRegularFile(file) ? Files.readAllLines(file, StandardCharsets.UTF_8)
            : List.of();
        if (!existing.isEmpty() && existing.get(0).startsWith("epoch,")) {
          // The columns the file already has, in its order; a key it lacks is left out.
          List<String> header = List.of(existing.get(0).split(","));
          columns = new ArrayList<>(header.subList(1, header.size()));
          keepRowsBefore(existing, epoch.epoch());
        } else {
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

  /** Drops the file's {@code lines} of epoch {@code first} and later (a resumed run writes them again). */
  private void keepRowsBefore(List<String> lines, int first) throws IOException {
    List<String> kept = new ArrayList<>();
    for (int i = 0; i < lines.size(); i++) {
      String line = lines.get(i);
      int comma = line.indexOf(',');
      boolean earlier;
      try {
        earlier = comma > 0 && Integer.parseInt(line.substring(0, comma)) < first;
      } catch (NumberFormatException e) {
        earlier = false;
      }
      if (i == 0 || earlier) {
        kept.add(line);
      }
    }
    if (kept.size() == lines.size()) {
      return;
    }
    Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
    Files.write(tmp, kept, StandardCharsets.UTF_8);
    Files.move(tmp, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING,
        java.nio.file.StandardCopyOption.ATOMIC_MOVE);
  }
}
