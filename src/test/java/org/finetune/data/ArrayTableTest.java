package org.finetune.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.finetune.testing.Python;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Arrays as NumPy and a CSV writer leave them, read and batched as Keras's fit takes them. */
class ArrayTableTest {
  @TempDir
  Path tmp;

  @Test
  void readsTheNpzNumpyWritesCompressedOrNot() throws IOException {
    Path plain = tmp.resolve("plain.npz");
    Path packed = tmp.resolve("packed.npz");
    numpy("a = np.arange(12, dtype=np.int64).reshape(4, 3); b = np.linspace(0, 1, 8).reshape(4, 2)\n"
        + "np.savez(sys.argv[1], ids=a, x=b); np.savez_compressed(sys.argv[2], ids=a, x=b)", plain, packed);
    for (Path p : List.of(plain, packed)) {
      ArrayTable t = ArrayTable.read(p, "unused");
      assertEquals(List.of("ids", "x"), List.copyOf(t.arrays().keySet()));
      assertEquals(4, t.rows());
      assertEquals("int64", t.get("ids").dtype());
      assertArrayEquals(new double[] {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, t.get("ids").all().toDoubles());
      assertEquals("float64", t.get("x").dtype());
      assertArrayEquals(new int[] {3, 4, 5, 6, 7, 8, 9, 10, 11, 0, 1, 2},
          t.get("ids").castTo("int32").rows(new int[] {1, 2, 3, 0}).toInts());
    }
  }

  /**
   * A mapped .npy gives the rows a read one gives, across the pieces it is mapped in; casts and
   * splits read only the rows a batch takes.
   */
  @Test
  void aMappedArrayGivesTheRowsOfTheReadOne() throws IOException {
    Path npy = tmp.resolve("big.npy");
    numpy("np.save(sys.argv[1], np.arange(7 * 2 * 3, dtype=np.int64).reshape(7, 2, 3))", npy);
    NpyArray read = NpyArray.read(npy);
    MappedNpy mapped = MappedNpy.open(npy, 3 * 2 * 3 * 8);
    assertEquals("int64", mapped.dtype());
    assertArrayEquals(new long[] {7, 2, 3}, mapped.shape());
    int[] rows = {6, 0, 3, 2, 5, 1, 4, 6};
    assertArrayEquals(read.rows(rows).data(), mapped.rows(rows).data());
    assertArrayEquals(read.rows(rows).castTo("int32").toInts(), mapped.castTo("int32").rows(rows).toInts());
    ArrayDataset d = ArrayDataset.of(Map.of("x", mapped), NpyArray.ofInts(new long[] {7}, new int[] {0, 1, 2, 3, 4, 5,
        6}), new ArrayDataset.Options(2, false, 1));
    ArrayDataset validation = d.split(0.3)[1];
    ArrayDataset.Rows batch = validation.epoch(0, 0).next();
    assertArrayEquals(new int[] {5, 6}, batch.targets().get(ArrayDataset.TARGETS).toInts());
    assertArrayEquals(read.rows(new int[] {5, 6}).data(), batch.inputs().get("x").data());
  }

  @Test
  void aFolderOfNpyFilesIsOneArrayPerFile() throws IOException {
    Path dir = tmp.resolve("x");
    Files.createDirectories(dir);
    numpy("np.save(sys.argv[1], np.zeros((3, 2), np.float32)); np.save(sys.argv[2], np.ones(3, np.int64))",
        dir.resolve("image.npy"), dir.resolve("ids.npy"));
    ArrayTable t = ArrayTable.read(dir, "unused");
    assertEquals(List.of("ids", "image"), List.copyOf(t.arrays().keySet()));
    assertEquals(3, t.rows());
  }

  @Test
  void csvColumnsReadAsPandasReadsThem() throws IOException {
    Path csv = tmp.resolve("t.csv");
    Files.writeString(csv, "a,b,label\n1.5,2,0\n-0.25,3,1\n");
    ArrayTable t = ArrayTable.read(csv, "unused");
    assertEquals("float32", t.get("a").dtype());
    assertEquals("int64", t.get("b").dtype());
    assertArrayEquals(new double[] {1.5, 2, -0.25, 3}, t.without(List.of("label")).columns(List.of("a", "b"))
        .toDoubles());
  }

  @Test
  void aBadCellIsNamedByLineAndColumn() throws IOException {
    Path csv = tmp.resolve("t.csv");
    Files.writeString(csv, "a,b\n1,2\n3,n/a\n");
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ArrayTable.read(csv, "x"));
    assertEquals("cannot read " + csv + ": line 3, column b: 'n/a' is not a number; encode categories and fill"
        + " missing values before training", e.getMessage());
  }

  @Test
  void arraysOfDifferentLengthsAreRefused() throws IOException {
    Path npz = tmp.resolve("bad.npz");
    numpy("np.savez(sys.argv[1], a=np.zeros((4, 2)), b=np.zeros(3))", npz);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ArrayTable.read(npz, "x"));
    assertEquals(npz + ": array 'b' has 3 rows and 'a' has 4; every array needs one row per example",
        e.getMessage());
  }

  @Test
  void validationIsTheLastShareAndShufflingIsSeededPerEpoch() {
    int n = 10;
    int[] ids = new int[n];
    for (int i = 0; i < n; i++) {
      ids[i] = i;
    }
    NpyArray x = NpyArray.ofInts(new long[] {n}, ids);
    ArrayDataset all = ArrayDataset.of(Map.of("x", x), x, new ArrayDataset.Options(4, true, 7));
    ArrayDataset[] parts = all.split(0.2);
    assertArrayEquals(new int[] {8, 9}, parts[1].targets().get(ArrayDataset.TARGETS).toInts());
    assertEquals(2, parts[0].batchesPerEpoch());
    List<Integer> first = order(parts[0], 0);
    assertEquals(first, order(parts[0], 0));
    assertNotEquals(first, order(parts[0], 1));
    assertEquals(List.of(0, 1, 2, 3, 4, 5, 6, 7), first.stream().sorted().toList());
    ArrayDataset inOrder = parts[0].with(new ArrayDataset.Options(3, false, 7));
    assertEquals(List.of(0, 1, 2, 3, 4, 5, 6, 7), order(inOrder, 5));
    assertEquals(3, inOrder.batchesPerEpoch());
  }

  /** Runs {@code code} with NumPy imported as np (and sys), the paths as its arguments. */
  private static void numpy(String code, Path... paths) throws IOException {
    List<String> command = new ArrayList<>(List.of(Python.interpreter().toString(), "-c",
        "import numpy as np, sys\n" + code));
    for (Path p : paths) {
      command.add(p.toString());
    }
    Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes());
    try {
      assertEquals(0, p.waitFor(), out);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException(e);
    }
  }

  private static List<Integer> order(ArrayDataset d, int epoch) {
    List<Integer> out = new ArrayList<>();
    for (Iterator<ArrayDataset.Rows> it = d.epoch(epoch, 0); it.hasNext();) {
      ArrayDataset.Rows r = it.next();
      int[] in = r.inputs().get("x").toInts();
      assertArrayEquals(in, r.targets().get(ArrayDataset.TARGETS).toInts());
      for (int v : in) {
        out.add(v);
      }
    }
    return out;
  }
}
