package org.finetune.data;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.tensorflow.RawTensor;
import org.tensorflow.Tensor;
import org.tensorflow.ndarray.Shape;
import org.tensorflow.ndarray.buffer.DataBuffers;
import org.tensorflow.proto.DataType;
import org.tensorflow.types.TBool;
import org.tensorflow.types.TFloat32;
import org.tensorflow.types.TFloat64;
import org.tensorflow.types.TInt32;
import org.tensorflow.types.TInt64;
import org.tensorflow.types.TString;
import org.tensorflow.types.TUint8;
import org.tensorflow.types.family.TType;

/**
 * A dense array in NumPy's {@code .npy} format (versions 1 to 3, C order, little-endian): the way
 * arrays travel between our Python scripts and Java. Holds the raw little-endian bytes.
 *
 * @param dtype NumPy's name: {@code float32}, {@code float64}, {@code int32}, {@code int64},
 *     {@code uint8} or {@code bool}; for text, NumPy's type code and width: {@code U<n>} (Unicode,
 *     n code points each, UTF-32) or {@code S<n>} (bytes, n each), padded with NULs as NumPy pads them
 * @param shape the dimensions
 * @param data the elements, little-endian, C order
 */
public record NpyArray(String dtype, long[] shape, byte[] data) implements ExampleArray {
  private static final byte[] MAGIC = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y'};
  private static final Map<String, String> DESCR = Map.of(
      "<f4", "float32", "<f8", "float64", "<i4", "int32", "<i8", "int64", "|u1", "uint8", "|b1", "bool");
  private static final Pattern DESCR_FIELD = Pattern.compile("'descr'\\s*:\\s*'([^']*)'");
  private static final Pattern ORDER_FIELD = Pattern.compile("'fortran_order'\\s*:\\s*(True|False)");
  private static final Pattern SHAPE_FIELD = Pattern.compile("'shape'\\s*:\\s*\\(([^)]*)\\)");
  /** NumPy's text dtypes: {@code <U5} (five UTF-32 code points each), {@code |S5} (five bytes each). */
  private static final Pattern TEXT_DESCR = Pattern.compile("[<|=]?([US])(\\d+)");

  public NpyArray {
    Objects.requireNonNull(dtype, "dtype");
    if (!DESCR.containsValue(dtype) && !isText(dtype)) {
      throw new IllegalArgumentException("unsupported dtype " + dtype + "; supported: " + DESCR.values()
          + " and text (U<n>, S<n>)");
    }
    shape = shape.clone();
    data = data.clone();
    long expected = elementCount(shape) * itemSize(dtype);
    if (data.length != expected) {
      throw new IllegalArgumentException(
          "a " + dtype + " array of shape " + Arrays.toString(shape) + " needs " + expected + " bytes, got " + data.length);
    }
  }

  @Override
  public long[] shape() {
    return shape.clone();
  }

  @Override
  public byte[] data() {
    return data.clone();
  }

  /** Reads a {@code .npy} file. */
  public static NpyArray read(Path file) throws IOException {
    return parse(Files.readAllBytes(file), file.toString());
  }

  /**
   * Parses the bytes of a {@code .npy} file; {@code file} names it in errors (for an array inside
   * an {@code .npz}, its archive and entry).
   */
  public static NpyArray parse(byte[] bytes, String file) throws IOException {
    Header h = header(bytes, file);
    long length = h.dataBytes();
    if (h.start() + length != bytes.length) {
      throw new IOException(file + " should hold " + length + " data bytes for shape " + Arrays.toString(h.shape())
          + ", holds " + (bytes.length - h.start()));
    }
    return new NpyArray(h.dtype(), h.shape(), Arrays.copyOfRange(bytes, h.start(), bytes.length));
  }

  /**
   * A {@code .npy} file's header: its dtype, shape and where the data starts.
   *
   * @param start the offset of the first data byte
   */
  record Header(String dtype, long[] shape, int start) {
    long dataBytes() {
      return elementCount(shape) * itemSize(dtype);
    }

    int itemBytes() {
      return itemSize(dtype);
    }
  }

  /** Reads the header at the start of {@code bytes} (the whole file, or enough of its start). */
  static Header header(byte[] bytes, String file) throws IOException {
    if (bytes.length < 10 || !Arrays.equals(Arrays.copyOf(bytes, 6), MAGIC)) {
      throw new IOException(file + " is not a .npy file (no \\x93NUMPY magic)");
    }
    int major = bytes[6];
    ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
    int headerLength = major == 1 ? Short.toUnsignedInt(b.getShort(8)) : b.getInt(8);
    int headerStart = major == 1 ? 10 : 12;
    if (headerLength < 0 || headerStart + headerLength > bytes.length) {
      throw new IOException(file + " is truncated inside its header");
    }
    String header = new String(bytes, headerStart, headerLength, StandardCharsets.ISO_8859_1);
    String descr = group(DESCR_FIELD, header, file);
    Matcher text = TEXT_DESCR.matcher(descr);
    String dtype = text.matches() ? text.group(1) + text.group(2) : DESCR.get(descr);
    if (dtype == null) {
      throw new IOException(file + " holds dtype " + descr + "; supported: " + DESCR.keySet()
          + " and text (<U<n>, |S<n>; not object arrays)");
    }
    if (group(ORDER_FIELD, header, file).equals("True")) {
      throw new IOException(file + " is in Fortran order; save it with np.ascontiguousarray");
    }
    String dims = group(SHAPE_FIELD, header, file).trim();
    long[] shape;
    try {
      shape = dims.isEmpty() ? new long[0]
          : Arrays.stream(dims.split(",")).map(String::trim).filter(s -> !s.isEmpty()).mapToLong(Long::parseLong)
              .toArray();
    } catch (NumberFormatException e) {
      throw new IOException(file + " has a malformed shape in its header: (" + dims + ")", e);
    }
    return new Header(dtype, shape, headerStart + headerLength);
  }

  /** Writes this array as a version 1.0 {@code .npy} file. */
  public void write(Path file) throws IOException {
    String descr = text() ? (dtype.startsWith("U") ? "<" : "|") + dtype
        : DESCR.entrySet().stream().filter(e -> e.getValue().equals(dtype)).findFirst().orElseThrow().getKey();
    StringBuilder dims = new StringBuilder();
    for (long d : shape) {
      dims.append(d).append(", ");
    }
    String shapeText = shape.length == 1 ? dims.substring(0, dims.length() - 1) : dims.length() == 0 ? ""
        : dims.substring(0, dims.length() - 2);
    String header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + shapeText + "), }";
    int pad = 64 - (10 + header.length() + 1) % 64;
    header = header + " ".repeat(pad % 64) + "\n";
    try (OutputStream out = Files.newOutputStream(file)) {
      out.write(MAGIC);
      out.write(new byte[] {1, 0, (byte) (header.length() & 0xff), (byte) (header.length() >> 8)});
      out.write(header.getBytes(StandardCharsets.ISO_8859_1));
      out.write(data);
    }
  }

  /** A new tensor holding a copy of the elements (a string tensor, UTF-8, for text). Caller closes. */
  public Tensor toTensor() {
    if (text()) {
      String[] values = strings();
      return TString.tensorOf(Shape.of(shape), DataBuffers.ofObjects(values));
    }
    return Tensor.of(tensorType(dtype), Shape.of(shape), DataBuffers.of(data, true, false));
  }

  /** Whether the elements are text ({@code U<n>} or {@code S<n>}). */
  public boolean text() {
    return isText(dtype);
  }

  /** Whether a dtype as this class names them ({@code U<n>}, {@code S<n>}, {@code float32}...) is text. */
  public static boolean isText(String dtype) {
    return dtype.matches("[US][0-9]+");
  }

  /**
   * The elements of a text array, C order, without NumPy's trailing NUL padding; {@code S<n>}
   * bytes are read as UTF-8.
   */
  public String[] strings() {
    if (!text()) {
      throw new IllegalStateException("strings needs a text array, this one is " + dtype);
    }
    int width = itemSize(dtype);
    int n = (int) elementCount(shape);
    String[] out = new String[n];
    for (int i = 0; i < n; i++) {
      int start = i * width;
      int end = start + width;
      if (dtype.startsWith("U")) {
        while (end > start && data[end - 4] == 0 && data[end - 3] == 0 && data[end - 2] == 0 && data[end - 1] == 0) {
          end -= 4;
        }
        out[i] = new String(data, start, end - start, java.nio.charset.Charset.forName("UTF-32LE"));
      } else {
        while (end > start && data[end - 1] == 0) {
          end--;
        }
        out[i] = new String(data, start, end - start, StandardCharsets.UTF_8);
      }
    }
    return out;
  }

  /** A Unicode text array ({@code U<n>}, n the longest element's code points), as NumPy makes one. */
  public static NpyArray ofStrings(long[] shape, String[] values) {
    int width = Math.max(1, Arrays.stream(values).mapToInt(v -> v.codePointCount(0, v.length())).max().orElse(1));
    ByteBuffer b = ByteBuffer.allocate(Math.multiplyExact(values.length, 4 * width)).order(ByteOrder.LITTLE_ENDIAN);
    for (String v : values) {
      int[] points = v.codePoints().toArray();
      for (int i = 0; i < width; i++) {
        b.putInt(i < points.length ? points[i] : 0);
      }
    }
    return new NpyArray("U" + width, shape, b.array());
  }

  /** Copies a dense tensor out of the runtime (a string tensor's elements as Unicode text). */
  public static NpyArray of(Tensor tensor) {
    if (tensor.dataType() == DataType.DT_STRING) {
      String[] values = new String[(int) tensor.shape().size()];
      int[] i = {0};
      ((TString) tensor).scalars().forEach(s -> values[i[0]++] = s.getObject());
      return ofStrings(tensor.shape().asArray(), values);
    }
    String dtype = npyType(tensor.dataType());
    RawTensor raw = tensor.asRawTensor();
    byte[] bytes = new byte[(int) raw.numBytes()];
    raw.data().read(bytes);
    return new NpyArray(dtype, tensor.shape().asArray(), bytes);
  }

  /** An int32 array of the given shape from its elements in C order. */
  public static NpyArray ofInts(long[] shape, int[] values) {
    ByteBuffer b = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
    b.asIntBuffer().put(values);
    return new NpyArray("int32", shape, b.array());
  }

  /** A float32 array of the given shape from its elements in C order. */
  public static NpyArray ofFloats(long[] shape, float[] values) {
    ByteBuffer b = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
    b.asFloatBuffer().put(values);
    return new NpyArray("float32", shape, b.array());
  }

  /** The elements of an int32 array, C order. */
  public int[] toInts() {
    if (!dtype.equals("int32")) {
      throw new IllegalStateException("toInts needs an int32 array, this one is " + dtype);
    }
    int[] out = new int[data.length / 4];
    ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN).asIntBuffer().get(out);
    return out;
  }

  /** The elements widened to doubles, for comparisons. */
  public double[] toDoubles() {
    if (text()) {
      throw new IllegalStateException("a text array (" + dtype + ") has no numeric values");
    }
    ByteBuffer b = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
    int n = (int) elementCount(shape);
    double[] out = new double[n];
    for (int i = 0; i < n; i++) {
      switch (dtype) {
        case "float32": out[i] = b.getFloat(); break;
        case "float64": out[i] = b.getDouble(); break;
        case "int32": out[i] = b.getInt(); break;
        case "int64": out[i] = b.getLong(); break;
        case "uint8": out[i] = Byte.toUnsignedInt(b.get()); break;
        default: out[i] = b.get() != 0 ? 1 : 0;
      }
    }
    return out;
  }

  /**
   * How far {@code actual} is from {@code expected}: max |actual - expected| / max |expected| (the
   * plain max difference when {@code expected} is all zeros). Our one measure of agreement with
   * Keras everywhere.
   */
  public static double relativeDifference(double[] expected, double[] actual) {
    if (expected.length != actual.length) {
      throw new IllegalArgumentException("cannot compare " + expected.length + " values with " + actual.length);
    }
    double maxDiff = 0;
    double maxAbs = 0;
    for (int i = 0; i < expected.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(expected[i] - actual[i]));
      maxAbs = Math.max(maxAbs, Math.abs(expected[i]));
    }
    return maxAbs == 0 ? maxDiff : maxDiff / maxAbs;
  }

  /**
   * The examples at {@code rows} along the first axis, in that order (rows may repeat): what a
   * batch of a shuffled epoch takes.
   */
  public NpyArray rows(int[] rows) {
    if (shape.length == 0) {
      throw new IllegalArgumentException("a scalar has no rows");
    }
    long count = shape[0];
    int rowBytes = Math.toIntExact(data.length / Math.max(1, count));
    byte[] out = new byte[Math.multiplyExact(rows.length, rowBytes)];
    for (int i = 0; i < rows.length; i++) {
      if (rows[i] < 0 || rows[i] >= count) {
        throw new IndexOutOfBoundsException("row " + rows[i] + " of " + count);
      }
      System.arraycopy(data, rows[i] * rowBytes, out, i * rowBytes, rowBytes);
    }
    long[] s = shape.clone();
    s[0] = rows.length;
    return new NpyArray(dtype, s, out);
  }

  /**
   * The same elements as {@code target} ({@code float32}, {@code float64}, {@code int32} or
   * {@code int64}), as NumPy's {@code astype} converts them: floats to integers truncate toward
   * zero, as does Keras when it casts ids.
   *
   * @throws IllegalArgumentException when an integer does not fit in int32, or a float is not finite
   *     on its way to an integer type, naming the first such element
   */
  public NpyArray castTo(String target) {
    if (dtype.equals(target) || text() && target.equals("string")) {
      return this;
    }
    if (text()) {
      throw new IllegalArgumentException("text (" + dtype + ") cannot be cast to " + target);
    }
    int size = itemSize(target);
    double[] values = toDoubles();
    long[] longs = dtype.equals("int64") ? longs() : null;
    ByteBuffer b = ByteBuffer.allocate(values.length * size).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < values.length; i++) {
      double v = values[i];
      switch (target) {
        case "float32" -> b.putFloat(longs != null ? (float) longs[i] : (float) v);
        case "float64" -> b.putDouble(longs != null ? (double) longs[i] : v);
        case "int32", "int64" -> {
          if (longs == null && !Double.isFinite(v)) {
            throw new IllegalArgumentException("element " + i + " is " + v + ", which has no " + target + " value");
          }
          long whole = longs != null ? longs[i] : (long) v;
          if (target.equals("int32")) {
            if (whole < Integer.MIN_VALUE || whole > Integer.MAX_VALUE) {
              throw new IllegalArgumentException("element " + i + " is " + whole + ", outside int32");
            }
            b.putInt((int) whole);
          } else {
            b.putLong(whole);
          }
        }
        default -> throw new IllegalArgumentException("cannot cast to " + target + "; float32, float64, int32 or int64");
      }
    }
    return new NpyArray(target, shape, b.array());
  }

  private long[] longs() {
    long[] out = new long[data.length / 8];
    ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN).asLongBuffer().get(out);
    return out;
  }

  /** Whether every element is a whole number (always for integer and bool arrays). */
  public boolean integral() {
    if (text()) {
      return false;
    }
    if (!dtype.startsWith("float")) {
      return true;
    }
    for (double v : toDoubles()) {
      if (v != Math.rint(v) || !Double.isFinite(v)) {
        return false;
      }
    }
    return true;
  }

  /** The number of elements. */
  public long size() {
    return elementCount(shape);
  }

  public List<Long> shapeList() {
    return Arrays.stream(shape).boxed().toList();
  }

  private static String group(Pattern p, String header, String file) throws IOException {
    Matcher m = p.matcher(header);
    if (!m.find()) {
      throw new IOException(file + " has a malformed .npy header: " + header.trim());
    }
    return m.group(1);
  }

  private static long elementCount(long[] shape) {
    long n = 1;
    for (long d : shape) {
      if (d < 0) {
        throw new IllegalArgumentException("negative dimension in " + Arrays.toString(shape));
      }
      n = Math.multiplyExact(n, d);
    }
    return n;
  }

  private static int itemSize(String dtype) {
    if (isText(dtype)) {
      int width = Integer.parseInt(dtype.substring(1));
      return dtype.startsWith("U") ? Math.multiplyExact(4, width) : width;
    }
    switch (dtype) {
      case "float64": case "int64": return 8;
      case "uint8": case "bool": return 1;
      default: return 4;
    }
  }

  private static Class<? extends TType> tensorType(String dtype) {
    switch (dtype) {
      case "float32": return TFloat32.class;
      case "float64": return TFloat64.class;
      case "int32": return TInt32.class;
      case "int64": return TInt64.class;
      case "uint8": return TUint8.class;
      default: return TBool.class;
    }
  }

  private static String npyType(DataType type) {
    switch (type) {
      case DT_FLOAT: return "float32";
      case DT_DOUBLE: return "float64";
      case DT_INT32: return "int32";
      case DT_INT64: return "int64";
      case DT_UINT8: return "uint8";
      case DT_BOOL: return "bool";
      default:
        throw new IllegalArgumentException("cannot copy a " + type.name().toLowerCase(Locale.ROOT)
            + " tensor to a .npy array");
    }
  }
}
