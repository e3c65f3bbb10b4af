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
