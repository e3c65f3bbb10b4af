package org.finetune.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TextDatasetTest {
  @Test
  void everyTransitionOfTheStreamIsPredictedOnceAndPaddingIsMasked() {
    List<int[]> docs = List.of(new int[] {1, 2, 3, 4, 5}, new int[] {6, 7}, new int[] {8, 9, 10, 11, 12, 13, 14});
    TextDataset d = TextDataset.of(docs, 99, new TextDataset.Options(4, 2, true, 5));
    int[] stream = {99, 1, 2, 3, 4, 5, 99, 6, 7, 99, 8, 9, 10, 11, 12, 13, 14};
    assertEquals(stream.length, d.tokens());
    List<String> transitions = new ArrayList<>();
    List<Integer> seenBlocks = new ArrayList<>();
    for (Iterator<Map<String, NpyArray>> it = d.epoch(0, 0); it.hasNext(); ) {
      Map<String, NpyArray> b = it.next();
      int[] ids = b.get(TextDataset.TOKEN_IDS).toInts();
      int[] mask = b.get(TextDataset.PADDING_MASK).toInts();
      assertEquals(4, b.get(TextDataset.TOKEN_IDS).shape()[1]);
      for (int r = 0; r < ids.length / 4; r++) {
        for (int t = 1; t < 4; t++) {
          if (mask[r * 4 + t] == 1) {
            transitions.add(ids[r * 4 + t - 1] + ">" + ids[r * 4 + t]);
          } else {
            assertEquals(0, ids[r * 4 + t], "padding is zeros");
          }
        }
        seenBlocks.add(ids[r * 4]);
      }
    }
    List<String> expected = new ArrayList<>();
    for (int i = 1; i < stream.length; i++) {
      expected.add(stream[i - 1] + ">" + stream[i]);
    }
    assertEquals(expected.stream().sorted().toList(), transitions.stream().sorted().toList());
    assertEquals(d.predictions(), transitions.size());
    assertEquals(6, d.blocks());
    assertEquals(3, d.batchesPerEpoch());
    // Seeded per epoch: the same epoch gives the same order, another epoch another.
    assertEquals(d.order(1), d.order(1));
    assertNotEquals(d.order(0), d.order(1));
    // Resuming at batch 2 gives epoch 0's last batch.
    Iterator<Map<String, NpyArray>> all = d.epoch(0, 0);
    all.next();
    all.next();
    assertEquals(java.util.Arrays.toString(all.next().get(TextDataset.TOKEN_IDS).toInts()),
        java.util.Arrays.toString(d.epoch(0, 2).next().get(TextDataset.TOKEN_IDS).toInts()));
    assertThrows(IllegalArgumentException.class, () -> new TextDataset.Options(1, 2, true, 0));
  }

  @Test
  void invalidUtf8IsReportedWithFileAndByteOffsetAndReplacedOrFatal(@TempDir Path dir) throws IOException {
    Path good = dir.resolve("a.txt");
    Files.writeString(good, "\uFEFFDroits d'auteur \u00e9t\u00e9 \uD83D\uDE00\n", StandardCharsets.UTF_8);
    Path bad = dir.resolve("b.txt");
    byte[] prefix = "caf".getBytes(StandardCharsets.US_ASCII);
    byte[] bytes = new byte[prefix.length + 4];
    System.arraycopy(prefix, 0, bytes, 0, prefix.length);
    bytes[3] = (byte) 0xC3; // a two-byte sequence cut short by an ASCII byte
    bytes[4] = 'x';
    bytes[5] = (byte) 0xFF; // never valid in UTF-8
    bytes[6] = 'y';
    Files.write(bad, bytes);
    Files.writeString(dir.resolve("ignored.md"), "not text by name");
    TextCorpus c = TextCorpus.read(List.of(dir), false);
    assertEquals(2, c.documents().size());
    assertEquals("Droits d'auteur \u00e9t\u00e9 \uD83D\uDE00\n", c.documents().get(0).text(), "BOM dropped");
    assertEquals("caf\uFFFDx\uFFFDy", c.documents().get(1).text());
    assertEquals(List.of(bad + ": invalid UTF-8 at byte 3 (and 1 more); replaced by U+FFFD"), c.warnings());
    IllegalArgumentException strict = assertThrows(IllegalArgumentException.class,
        () -> TextCorpus.read(List.of(dir), true));
    assertEquals(bad + ": invalid UTF-8 at byte 3 (and 1 more)", strict.getMessage());
    // A file named directly is read whatever its name; a second route to it counts once.
    assertEquals(3, TextCorpus.read(List.of(dir, dir.resolve("ignored.md"), good), false).documents().size());
    assertThrows(IllegalArgumentException.class, () -> TextCorpus.read(List.of(dir.resolve("none")), false));
    Path empty = Files.createDirectory(dir.resolve("empty"));
    assertTrue(assertThrows(IllegalArgumentException.class, () -> TextCorpus.read(List.of(empty), false))
        .getMessage().contains("no text files"));
  }

  @Test
  void validationSplitIsByDocumentAndSeeded(@TempDir Path dir) throws IOException {
    for (int i = 0; i < 10; i++) {
      Files.writeString(dir.resolve("doc" + i + ".txt"), "document " + i);
    }
    TextCorpus c = TextCorpus.read(List.of(dir), false);
    TextCorpus[] s = c.split(0.2, 7);
    assertEquals(8, s[0].documents().size());
    assertEquals(2, s[1].documents().size());
    assertTrue(s[0].documents().stream().noneMatch(s[1].documents()::contains));
    assertEquals(s[1].documents(), c.split(0.2, 7)[1].documents());
    assertThrows(IllegalArgumentException.class, () -> c.split(1.0, 7));
  }
}
