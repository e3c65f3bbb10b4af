package org.finetune.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.finetune.testing.Fixture;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.tensorflow.Tensor;

class NpyArrayTest {
  @Test
  void readsWhatNumPyWrote() throws IOException {
    NpyArray ids = NpyArray.read(Fixture.of("generated/gpt2_small/keras3_export")
        .sampleFile("sample/input_token_ids.npy"));
    assertEquals("int32", ids.dtype());
    assertArrayEquals(new long[] {2, 8}, ids.shape());
    NpyArray mask = NpyArray.read(Fixture.of("generated/gpt2_small/keras3_export")
        .sampleFile("sample/input_padding_mask.npy"));
    double[] m = mask.toDoubles();
    // The script masks the last two positions of the second row.
    assertArrayEquals(new double[] {1, 1, 1, 1, 1, 1, 0, 0}, java.util.Arrays.copyOfRange(m, 8, 16));
  }

  /**
   * Text as NumPy stores it: {@code <U} (UTF-32 code points, NUL-padded to the longest) and
   * {@code |S} (bytes); read into the strings NumPy holds, fed to TensorFlow as UTF-8 strings, and
   * written back as {@code <U} that NumPy reads as the same strings.
   */
  @Test
  void textArraysRoundTripWithNumPy(@TempDir Path dir) throws Exception {
    String code = "import numpy as np, sys; d = sys.argv[1]\n"
        + "np.save(d + '/u.npy', np.array([['gr\\u00fcn', 'a'], ['\\u65e5\\u672c \\U0001F600', '']]))\n"
        + "np.save(d + '/s.npy', np.array([b'red', b'blue', b'']))\n";
    python(code, dir.toString());
    NpyArray u = NpyArray.read(dir.resolve("u.npy"));
    assertEquals("U4", u.dtype());
    assertArrayEquals(new long[] {2, 2}, u.shape());
    assertArrayEquals(new String[] {"gr\u00fcn", "a", "\u65e5\u672c \uD83D\uDE00", ""}, u.strings());
    NpyArray s = NpyArray.read(dir.resolve("s.npy"));
    assertEquals("S4", s.dtype());
    assertArrayEquals(new String[] {"red", "blue", ""}, s.strings());
    try (Tensor t = u.toTensor()) {
      assertEquals(org.tensorflow.proto.DataType.DT_STRING, t.dataType());
      assertArrayEquals(u.strings(), NpyArray.of(t).strings());
      assertArrayEquals(new long[] {2, 2}, t.shape().asArray());
    }
    NpyArray.ofStrings(new long[] {3}, new String[] {"\u00e9t\u00e9", "x", "\uD83D\uDE00!"}).write(dir.resolve("j.npy"));
    assertEquals("['\u00e9t\u00e9', 'x', '\uD83D\uDE00!'] <U3", python("import numpy as np, sys\n"
        + "a = np.load(sys.argv[1] + '/j.npy'); print(a.tolist(), a.dtype.str)", dir.toString()).strip());
    assertEquals(u.rows(new int[] {1}).strings()[0], "\u65e5\u672c \uD83D\uDE00");
    assertThrows(IllegalStateException.class, u::toDoubles);
  }

  private static String python(String code, String arg) throws Exception {
    ProcessBuilder pb = new ProcessBuilder(org.finetune.testing.Python.interpreter().toString(), "-c", code, arg)
        .redirectErrorStream(true);
    pb.environment().put("PYTHONIOENCODING", "utf-8");
    Process p = pb.start();
    String out = new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
    assertEquals(0, p.waitFor(), out);
    return out;
  }

  @Test
  void writeThenReadGivesTheSameArray(@TempDir Path dir) throws IOException {
    byte[] data = new byte[2 * 3 * 4];
    for (int i = 0; i < data.length; i++) {
      data[i] = (byte) (i * 7);
    }
    NpyArray a = new NpyArray("float32", new long[] {2, 3}, data);
    a.write(dir.resolve("a.npy"));
    NpyArray b = NpyArray.read(dir.resolve("a.npy"));
    assertEquals(a.dtype(), b.dtype());
    assertArrayEquals(a.shape(), b.shape());
    assertArrayEquals(a.data(), b.data());
  }

  @Test
  void tensorRoundTripKeepsEveryByte() throws IOException {
    NpyArray x = NpyArray.read(Fixture.of("vgg16_small/keras3_export").sampleFile("sample/input_keras_tensor.npy"));
    try (Tensor t = x.toTensor()) {
      NpyArray back = NpyArray.of(t);
      assertArrayEquals(x.data(), back.data());
      assertArrayEquals(x.shape(), back.shape());
    }
  }

  @Test
  void truncatedFileIsRefused(@TempDir Path dir) throws IOException {
    Path src = Fixture.of("vgg16_small/keras3_export").sampleFile("sample/input_keras_tensor.npy");
    byte[] bytes = Files.readAllBytes(src);
    Path cut = dir.resolve("cut.npy");
    Files.write(cut, java.util.Arrays.copyOf(bytes, bytes.length - 5));
    IOException e = assertThrows(IOException.class, () -> NpyArray.read(cut));
    assertEquals(true, e.getMessage().contains("cut.npy"), e.getMessage());
  }
}
