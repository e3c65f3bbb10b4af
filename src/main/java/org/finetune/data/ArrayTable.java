package org.finetune.data;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Enumeration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.zip.ZipEntry;
import java.util.zip.ZipException;
import java.util.zip.ZipFile;

/**
 * Named arrays whose first axis counts the same examples: what a model trained on arrays reads,
 * as Keras's {@code fit(x, y)} takes NumPy arrays. Read from a {@code .npz} (one array per name),
 * a {@code .npy} (one array, named by the caller), a folder of {@code .npy} files (one array per
 * file, named after it) or a CSV table with a header row. A {@code .npy} file larger than
 * {@link #MAP_BYTES} is mapped rather than read, so arrays larger than memory train.
 *
 * @param source the file it was read from, for messages
 * @param arrays the arrays by name, in file order
 * @param rows the examples (the first dimension every array shares)
 */
public record ArrayTable(Path source, Map<String, ExampleArray> arrays, long rows) {
  /** A {@code .npy} file larger than this is mapped, not read. */
  public static final long MAP_BYTES = 256L << 20;

  public ArrayTable {
    arrays = Collections.unmodifiableMap(new LinkedHashMap<>(arrays));
  }

  /** The array called {@code name}, or an error naming the file and the names it has. */
  public ExampleArray get(String name) {
    ExampleArray a = arrays.get(name);
    if (a == null) {
      throw new IllegalArgumentException(source + " has no array '" + name + "'; it has " + String.join(", ",
          arrays.keySet()));
    }
    return a;
  }

  /** The table without the arrays in {@code names}. */
  public ArrayTable without(List<String> names) {
    Map<String, ExampleArray> kept = new LinkedHashMap<>(arrays);
    names.forEach(kept::remove);
    return new ArrayTable(source, kept, rows);
  }


  /**
   * Reads {@code file} by its extension: {@code .npz} (every array in it, named as saved),
   * {@code .npy} (one array named {@code name}) or {@code .csv} (one column per header name:
   * float32 columns, or int64 ones when every value is a whole number, as pandas reads them).
   *
   * @throws IllegalArgumentException when the file is missing, unreadable, of another kind, or its
   *     arrays disagree on the number of examples; the message names the file and the fix
   */
  public static ArrayTable read(Path file, String name) {
    if (Files.isDirectory(file)) {
      return folder(file);
    }
    if (!Files.isRegularFile(file)) {
      throw new IllegalArgumentException(file + " is not a file; give a .npz, .npy or .csv file of examples, or a"
          + " folder of .npy files");
    }
    String lower = file.getFileName().toString().toLowerCase(Locale.ROOT);
    try {
      if (lower.endsWith(".npz")) {
        return of(file, npz(file));
      }
      if (lower.endsWith(".npy")) {
        return of(file, Map.of(name, npy(file)));
      }
      if (lower.endsWith(".csv")) {
        return of(file, csv(file));
      }
    } catch (IOException e) {
      throw new IllegalArgumentException("cannot read " + file + ": " + e.getMessage(), e);
    }
    throw new IllegalArgumentException(file + " is neither .npz, .npy nor .csv; save the arrays with numpy.savez or"
        + " numpy.save, or the table as CSV with a header row");
  }

  /**
   * A folder of {@code .npy} files, one array each, named after its file: how arrays larger than
   * memory come (each is mapped), several inputs included.
   */
  private static ArrayTable folder(Path dir) {
    Map<String, ExampleArray> arrays = new LinkedHashMap<>();
    try (java.util.stream.Stream<Path> list = Files.list(dir)) {
      for (Path p : list.sorted().toList()) {
        String n = p.getFileName().toString();
        if (n.startsWith(".")) {
          continue;
        }
        if (!n.toLowerCase(Locale.ROOT).endsWith(".npy") || !Files.isRegularFile(p)) {
          throw new IllegalArgumentException(dir + " holds " + n + ", which is not a .npy file; a folder of examples"
              + " holds one INPUT.npy per input");
        }
        arrays.put(n.substring(0, n.length() - 4), npy(p));
      }
    } catch (IOException e) {
      throw new IllegalArgumentException("cannot read " + dir + ": " + e.getMessage(), e);
    }
    return of(dir, arrays);
  }

  /** A {@code .npy} file, read into memory, or mapped when larger than {@link #MAP_BYTES}. */
  private static ExampleArray npy(Path file) throws IOException {
    return Files.size(file) > MAP_BYTES ? MappedNpy.open(file) : NpyArray.read(file);
  }

  private static ArrayTable of(Path file, Map<String, ? extends ExampleArray> arrays) {
    if (arrays.isEmpty()) {
      throw new IllegalArgumentException(file + " holds no arrays");
    }
    long rows = -1;
    String first = null;
    for (Map.Entry<String, ? extends ExampleArray> e : arrays.entrySet()) {
      long[] shape = e.getValue().shape();
      if (shape.length == 0) {
        throw new IllegalArgumentException(file + ": array '" + e.getKey() + "' is a scalar; each array needs one row"
            + " per example along its first axis");
      }
      if (rows >= 0 && shape[0] != rows) {
        throw new IllegalArgumentException(file + ": array '" + e.getKey() + "' has " + shape[0] + " rows and '" + first
            + "' has " + rows + "; every array needs one row per example");
      }
      if (rows < 0) {
        rows = shape[0];
        first = e.getKey();
      }
    }
    if (rows == 0) {
      throw new IllegalArgumentException(file + " holds no examples (its arrays have 0 rows)");
    }
    return new ArrayTable(file, new LinkedHashMap<>(arrays), rows);
  }

  private static Map<String, NpyArray> npz(Path file) throws IOException {
    Map<String, NpyArray> out = new LinkedHashMap<>();
    try (ZipFile zip = new ZipFile(file.toFile())) {
      List<ZipEntry> entries = new ArrayList<>();
      for (Enumeration<? extends ZipEntry> e = zip.entries(); e.hasMoreElements();) {
        entries.add(e.nextElement());
      }
      for (ZipEntry entry : entries) {
        String n = entry.getName();
        if (entry.isDirectory() || !n.endsWith(".npy")) {
          throw new IOException("entry '" + n + "' is not a .npy array; write the file with numpy.savez");
        }
        byte[] bytes;
        try (InputStream in = zip.getInputStream(entry)) {
          bytes = in.readAllBytes();
        }
        out.put(n.substring(0, n.length() - 4), NpyArray.parse(bytes, file + "[" + n + "]"));
      }
    } catch (ZipException e) {
      throw new IOException("it is not a .npz archive (" + e.getMessage() + ")", e);
    }
    return out;
  }

  private static Map<String, NpyArray> csv(Path file) throws IOException {
    List<String> lines;
    try {
      lines = Files.readAllLines(file, StandardCharsets.UTF_8);
    } catch (java.nio.charset.MalformedInputException e) {
      throw new IOException("it is not UTF-8 text", e);
    }
    if (lines.isEmpty()) {
      throw new IOException("it is empty; it needs a header row naming the columns");
    }
    String[] header = split(lines.get(0), 1);
    for (int c = 0; c < header.length; c++) {
      header[c] = header[c].strip();
      if (c == 0 && header[c].startsWith("\uFEFF")) {
        header[c] = header[c].substring(1);
      }
      if (header[c].isEmpty()) {
        throw new IOException("line 1: column " + (c + 1) + " has no name; the first row names the columns");
      }
    }
    List<double[]> rows = new ArrayList<>();
    for (int i = 1; i < lines.size(); i++) {
      if (lines.get(i).isBlank()) {
        continue;
      }
      String[] cells = split(lines.get(i), i + 1);
      if (cells.length != header.length) {
        throw new IOException("line " + (i + 1) + " has " + cells.length + " values and the header names "
            + header.length + " columns");
      }
      double[] row = new double[cells.length];
      for (int c = 0; c < cells.length; c++) {
        String cell = cells[c].strip();
        try {
          row[c] = Double.parseDouble(cell);
        } catch (NumberFormatException e) {
          throw new IOException("line " + (i + 1) + ", column " + header[c] + ": '" + cell + "' is not a number;"
              + " encode categories and fill missing values before training");
        }
        if (!Double.isFinite(row[c])) {
          throw new IOException("line " + (i + 1) + ", column " + header[c] + ": '" + cell + "' is not finite");
        }
      }
      rows.add(row);
    }
    Map<String, NpyArray> out = new LinkedHashMap<>();
    for (int c = 0; c < header.length; c++) {
      if (out.containsKey(header[c])) {
        throw new IOException("column '" + header[c] + "' appears twice in the header");
      }
      boolean whole = true;
      for (double[] r : rows) {
        whole &= r[c] == Math.rint(r[c]) && Math.abs(r[c]) < 1L << 53;
      }
      ByteBuffer b = ByteBuffer.allocate(rows.size() * (whole ? 8 : 4)).order(ByteOrder.LITTLE_ENDIAN);
      for (double[] r : rows) {
        if (whole) {
          b.putLong((long) r[c]);
        } else {
          b.putFloat((float) r[c]);
        }
      }
      out.put(header[c], new NpyArray(whole ? "int64" : "float32", new long[] {rows.size()}, b.array()));
    }
    return out;
  }

  private static String[] split(String line, int number) throws IOException {
    if (line.indexOf('"') >= 0) {
      throw new IOException("line " + number + " has quoted cells; the table must be numeric, with plain names");
    }
    return line.split(",", -1);
  }

  /**
   * Columns {@code names} of a table read from CSV side by side as one float32 matrix
   * {@code [rows, names.size()]}, in that order: a table's features as one model input.
   */
  public NpyArray columns(List<String> names) {
    int n = Math.toIntExact(rows);
    ByteBuffer b = ByteBuffer.allocate(n * names.size() * 4).order(ByteOrder.LITTLE_ENDIAN);
    List<double[]> cols = new ArrayList<>();
    for (String name : names) {
      ExampleArray a = get(name);
      if (a.shape().length != 1) {
        throw new IllegalArgumentException(source + ": '" + name + "' is not a column");
      }
      cols.add((a instanceof NpyArray inMemory ? inMemory : a.all()).toDoubles());
    }
    for (int r = 0; r < n; r++) {
      for (double[] c : cols) {
        b.putFloat((float) c[r]);
      }
    }
    return new NpyArray("float32", new long[] {n, names.size()}, b.array());
  }
}
