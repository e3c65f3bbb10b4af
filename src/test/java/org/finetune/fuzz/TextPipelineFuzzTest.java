package org.finetune.fuzz;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.finetune.data.NpyArray;
import org.finetune.data.TextCorpus;
import org.finetune.data.TextDataset;
import org.finetune.text.Gpt2Tokenizer;
import org.junit.jupiter.api.io.TempDir;

/**
 * Fuzz target over the text pipeline, from bytes on disk to training blocks: the bytes (split at
 * NUL into up to eight {@code .txt} files of one folder) are read as a {@link TextCorpus}, each
 * document goes through {@link Gpt2Tokenizer} and back, and the token ids become
 * {@link TextDataset} blocks with a fuzzed length and batch size.
 *
 * <p>What must hold for any bytes: the decoded text is what the JDK's own UTF-8 decoder gives
 * (U+FFFD per malformed sequence, a leading BOM dropped), the first invalid byte offset reported is
 * the one a plain RFC 3629 scan finds, strict mode refuses exactly the invalid files; encoding then
 * decoding gives back the text exactly, streamed detokenization equals decoding; and the blocks
 * cover every next-token transition of the stream exactly once, with padding masked. The only
 * exception allowed is {@link IllegalArgumentException} for a corpus without text, the one the
 * CLI maps to exit code 2.
 */
class TextPipelineFuzzTest {
  private static final int MAX_FILES = 8;

  @TempDir
  static Path work;

  private static int run;

  @FuzzTest
  void pipeline(FuzzedDataProvider data) throws IOException {
    int length = data.consumeInt(2, 64);
    int batchSize = data.consumeInt(1, 8);
    boolean shuffle = data.consumeBoolean();
    long seed = data.consumeLong();
    byte[] bytes = data.consumeRemainingAsBytes();

    Path folder = work.resolve("corpus" + run++);
    Files.createDirectories(folder);
    try {
      check(folder, bytes, new TextDataset.Options(length, batchSize, shuffle, seed));
    } finally {
      try (Stream<Path> files = Files.walk(folder)) {
        for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
          Files.delete(p);
        }
      }
    }
  }

  private static void check(Path folder, byte[] bytes, TextDataset.Options options) throws IOException {
    List<byte[]> files = splitAtNul(bytes);
    List<String> expectedTexts = new ArrayList<>();
    boolean anyInvalid = false;
    for (int i = 0; i < files.size(); i++) {
      byte[] content = files.get(i);
      Files.write(folder.resolve(String.format("doc%d.txt", i)), content);
      anyInvalid |= firstInvalidByte(content) >= 0;
      String text = jdkDecode(content);
      if (!text.isBlank()) {
        expectedTexts.add(text);
      }
    }

    TextCorpus corpus;
    try {
      corpus = TextCorpus.read(List.of(folder), false);
    } catch (IllegalArgumentException e) {
      assertTrue(expectedTexts.isEmpty(), () -> "refused a corpus that has text: " + e.getMessage());
      Messages.assertOneLine(e.getMessage(), e);
      return;
    }
    List<String> texts = corpus.documents().stream().map(TextCorpus.Document::text).toList();
    assertEquals(expectedTexts, texts, "decoded text differs from the JDK's UTF-8 decoding");
    checkWarnings(folder, files, corpus.warnings());
    checkStrict(folder, anyInvalid);

    Gpt2Tokenizer tokenizer = Gpt2Tokenizer.get();
    List<int[]> documents = new ArrayList<>();
    for (String text : texts) {
      int[] ids = tokenizer.encode(text);
      for (int id : ids) {
        assertTrue(id >= 0 && id < Gpt2Tokenizer.END_OF_TEXT, () -> "encode gave id " + id);
      }
      assertEquals(text, tokenizer.decode(ids), "encode then decode must give the text back");
      Gpt2Tokenizer.Detokenizer stream = tokenizer.detokenizer();
      StringBuilder streamed = new StringBuilder();
      for (int id : ids) {
        streamed.append(stream.accept(id));
      }
      streamed.append(stream.flush());
      assertEquals(text, streamed.toString(), "streamed detokenization differs from decode");
      documents.add(ids);
    }
    checkBlocks(TextDataset.of(documents, Gpt2Tokenizer.END_OF_TEXT, options), documents, options);
  }

  /** The warning names the file and the first invalid byte offset; valid files get none. */
  private static void checkWarnings(Path folder, List<byte[]> files, List<String> warnings) {
    List<String> expected = new ArrayList<>();
    for (int i = 0; i < files.size(); i++) {
      int bad = firstInvalidByte(files.get(i));
      if (bad >= 0) {
        expected.add(folder.resolve(String.format("doc%d.txt", i)) + ": invalid UTF-8 at byte " + bad);
      }
    }
    assertEquals(expected.size(), warnings.size(), () -> "warnings " + warnings + ", expected " + expected);
    for (int i = 0; i < expected.size(); i++) {
      assertTrue(warnings.get(i).startsWith(expected.get(i)), "warning '" + warnings.get(i) + "', expected it to"
          + " start with '" + expected.get(i) + "'");
      Messages.assertOneLine(warnings.get(i), null);
    }
  }

  private static void checkStrict(Path folder, boolean anyInvalid) {
    try {
      TextCorpus.read(List.of(folder), true);
      assertTrue(!anyInvalid, "strict mode accepted invalid UTF-8");
    } catch (IllegalArgumentException e) {
      assertTrue(anyInvalid, () -> "strict mode refused valid UTF-8: " + e.getMessage());
      Messages.assertOneLine(e.getMessage(), e);
    }
  }

  /** Rebuilds the token stream from the blocks: every transition once, padding masked and zero. */
  private static void checkBlocks(TextDataset dataset, List<int[]> documents, TextDataset.Options options) {
    List<Integer> stream = new ArrayList<>();
    for (int[] d : documents) {
      stream.add(Gpt2Tokenizer.END_OF_TEXT);
      Arrays.stream(d).forEach(stream::add);
    }
    assertEquals(stream.size(), dataset.tokens());
    assertEquals(stream.size() - 1L, dataset.predictions());
    int length = options.length();
    for (int epoch = 0; epoch < 2; epoch++) {
      boolean[] seen = new boolean[dataset.blocks()];
      long transitions = 0;
      int batches = 0;
      Iterator<Map<String, NpyArray>> it = dataset.epoch(epoch, 0);
      List<Integer> order = dataset.order(epoch);
      int position = 0;
      while (it.hasNext()) {
        Map<String, NpyArray> batch = it.next();
        batches++;
        int[] ids = batch.get(TextDataset.TOKEN_IDS).toInts();
        int[] mask = batch.get(TextDataset.PADDING_MASK).toInts();
        long[] shape = batch.get(TextDataset.TOKEN_IDS).shape();
        assertEquals(length, shape[1]);
        assertTrue(shape[0] >= 1 && shape[0] <= options.batchSize());
        for (int row = 0; row < shape[0]; row++) {
          int block = order.get(position++);
          assertTrue(!seen[block], "block " + block + " twice in epoch " + epoch);
          seen[block] = true;
          int from = block * (length - 1);
          int real = 0;
          for (int t = 0; t < length; t++) {
            int at = row * length + t;
            if (from + t < stream.size()) {
              assertEquals(stream.get(from + t), ids[at]);
              assertEquals(1, mask[at]);
              real++;
            } else {
              assertEquals(0, ids[at]);
              assertEquals(0, mask[at]);
            }
          }
          transitions += real - 1;
        }
      }
      assertEquals(dataset.batchesPerEpoch(), batches);
      assertEquals(dataset.blocks(), position, "every block once per epoch");
      assertEquals(dataset.predictions(), transitions, "every transition predicted exactly once");
    }
  }

  private static List<byte[]> splitAtNul(byte[] bytes) {
    List<byte[]> files = new ArrayList<>();
    int start = 0;
    for (int i = 0; i <= bytes.length && files.size() < MAX_FILES - 1; i++) {
      if (i == bytes.length || bytes[i] == 0) {
        files.add(Arrays.copyOfRange(bytes, start, i));
        start = i + 1;
      }
    }
    if (start <= bytes.length && files.size() == MAX_FILES - 1) {
      files.add(Arrays.copyOfRange(bytes, start, bytes.length));
    }
    return files;
  }

  /** The JDK's decoding of a file's bytes: one U+FFFD per malformed sequence, a leading BOM dropped. */
  private static String jdkDecode(byte[] content) {
    String text = new String(content, StandardCharsets.UTF_8);
    return hasBom(content) ? text.substring(1) : text;
  }

  private static boolean hasBom(byte[] b) {
    return b.length >= 3 && (b[0] & 0xff) == 0xef && (b[1] & 0xff) == 0xbb && (b[2] & 0xff) == 0xbf;
  }

  /** The offset of the first byte that starts an ill-formed sequence (RFC 3629, table 3-7), or -1. */
  static int firstInvalidByte(byte[] b) {
    int i = 0;
    while (i < b.length) {
      int lead = b[i] & 0xff;
      int n;
      int low = 0x80;
      int high = 0xbf;
      if (lead < 0x80) {
        i++;
        continue;
      } else if (lead >= 0xc2 && lead <= 0xdf) {
        n = 1;
      } else if (lead >= 0xe0 && lead <= 0xef) {
        n = 2;
        low = lead == 0xe0 ? 0xa0 : 0x80;
        high = lead == 0xed ? 0x9f : 0xbf;
      } else if (lead >= 0xf0 && lead <= 0xf4) {
        n = 3;
        low = lead == 0xf0 ? 0x90 : 0x80;
        high = lead == 0xf4 ? 0x8f : 0xbf;
      } else {
        return i;
      }
      if (i + n >= b.length) {
        return i;
      }
      for (int k = 1; k <= n; k++) {
        int c = b[i + k] & 0xff;
        if (k == 1 ? c < low || c > high : c < 0x80 || c > 0xbf) {
          return i;
        }
      }
      i += n + 1;
    }
    return -1;
  }
}
