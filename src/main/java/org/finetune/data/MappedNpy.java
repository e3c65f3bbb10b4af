package org.finetune.data;

import java.io.IOException;
import java.io.InputStream;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A {@code .npy} file mapped into memory rather than read: the operating system pages in the rows
 * a batch takes, so arrays larger than memory train. Mapped in pieces of whole rows of at most
 * 1 GiB each (a mapping's limit is 2 GiB).
 */
public final class MappedNpy implements ExampleArray {
  private static final long PIECE = 1L << 30;

  private final Path file;
  private final String dtype;
  private final long[] shape;
  private final int rowBytes;
  private final long rowsPerPiece;
  private final List<MappedByteBuffer> pieces = new ArrayList<>();

  private MappedNpy(Path file, NpyArray.Header header, long pieceBytes) throws IOException {
    this.file = file;
    this.dtype = header.dtype();
    this.shape = header.shape().clone();
    if (shape.length == 0) {
      throw new IOException(file + " holds a scalar; an array of examples needs one row per example");
    }
    long rows = shape[0];
    long row = rows == 0 ? 0 : header.dataBytes() / rows;
    if (row > pieceBytes) {
      throw new IOException(file + ": one example takes " + row + " bytes, more than a mapping of " + pieceBytes
          + " holds");
    }
    this.rowBytes = (int) row;
    this.rowsPerPiece = rowBytes == 0 ? Math.max(1, rows) : pieceBytes / rowBytes;
    long size = Files.size(file);
    if (header.start() + header.dataBytes() != size) {
      throw new IOException(file + " should hold " + header.dataBytes() + " data bytes for shape "
          + Arrays.toString(shape) + ", holds " + (size - header.start()));
    }
    try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
      for (long first = 0; first < rows; first += rowsPerPiece) {
        long count = Math.min(rowsPerPiece, rows - first);
        pieces.add(channel.map(FileChannel.MapMode.READ_ONLY, header.start() + first * rowBytes, count * rowBytes));
      }
    }
  }

  /** Maps {@code file}, reading only its header. */
  public static MappedNpy open(Path file) throws IOException {
    return open(file, PIECE);
  }

  /** Maps {@code file} in pieces of at most {@code pieceBytes} (whole rows each). */
  static MappedNpy open(Path file, long pieceBytes) throws IOException {
    byte[] start;
    try (InputStream in = Files.newInputStream(file)) {
      start = in.readNBytes(1 << 16);
    }
    return new MappedNpy(file, NpyArray.header(start, file.toString()), pieceBytes);
  }

  @Override
  public String dtype() {
    return dtype;
  }

  @Override
  public long[] shape() {
    return shape.clone();
  }

  @Override
  public NpyArray rows(int[] rows) {
    byte[] out = new byte[Math.multiplyExact(rows.length, rowBytes)];
    for (int i = 0; i < rows.length; i++) {
      if (rows[i] < 0 || rows[i] >= shape[0]) {
        throw new IndexOutOfBoundsException("row " + rows[i] + " of " + shape[0] + " in " + file);
      }
      MappedByteBuffer piece = pieces.get((int) (rows[i] / rowsPerPiece));
      piece.get((int) ((rows[i] % rowsPerPiece) * rowBytes), out, i * rowBytes, rowBytes);
    }
    long[] s = shape.clone();
    s[0] = rows.length;
    return new NpyArray(dtype, s, out);
  }

  @Override
  public String toString() {
    return file + " (mapped, " + dtype + " " + Arrays.toString(shape) + ")";
  }
}
