package org.finetune.data;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;

/**
 * Plain-text documents read from files and folders: a file given by name is read whatever its
 * name, a folder contributes every {@code .txt} file below it (in path order). A file reached
 * twice (by a second root or a symbolic link) counts once. Text is UTF-8 (a leading byte-order
 * mark is dropped); a malformed byte sequence is reported with its file and byte offset and
 * either replaced by U+FFFD (the default, with a warning) or fatal ({@code strict}).
 */
public final class TextCorpus {
  /** One document: where it came from and its text. */
  public record Document(Path file, String text) {}

  private final List<Document> documents;
  private final List<String> warnings;

  private TextCorpus(List<Document> documents, List<String> warnings) {
    this.documents = Collections.unmodifiableList(new ArrayList<>(documents));
    this.warnings = Collections.unmodifiableList(new ArrayList<>(warnings));
  }

  /** Reads {@code roots}; fails when they hold no text at all. */
  public static TextCorpus read(List<Path> roots, boolean strict) {
    Map<Path, Path> files = new LinkedHashMap<>();
    for (Path root : roots) {
      if (!Files.exists(root)) {
        throw new IllegalArgumentException(root + " does not exist");
      }
      for (Path f : filesUnder(root)) {
        try {
          files.putIfAbsent(f.toRealPath(), f);
        } catch (IOException e) {
          throw new UncheckedIOException("cannot resolve " + f, e);
        }
      }
    }
    if (files.isEmpty()) {
      throw new IllegalArgumentException("no text files under " + roots + " (folders contribute their *.txt files;"
          + " name other files directly)");
    }
    List<Document> docs = new ArrayList<>();
    List<String> warnings = new ArrayList<>();
    for (Path f : files.values()) {
      byte[] bytes;
      try {
        bytes = Files.readAllBytes(f);
      } catch (IOException e) {
        throw new UncheckedIOException("cannot read " + f, e);
      }
      Decoded d = decode(bytes);
      if (!d.badOffsets().isEmpty()) {
        String where = f + ": invalid UTF-8 at byte " + d.badOffsets().get(0)
            + (d.badOffsets().size() > 1 ? " (and " + (d.badOffsets().size() - 1) + " more)" : "");
        if (strict) {
          throw new IllegalArgumentException(where);
        }
        warnings.add(where + "; replaced by U+FFFD");
      }
      if (!d.text().isBlank()) {
        docs.add(new Document(f, d.text()));
      }
    }
    if (docs.isEmpty()) {
      throw new IllegalArgumentException("every text file under " + roots + " is empty");
    }
    return new TextCorpus(docs, warnings);
  }

  /** The same documents, split by document: {@code [train, validation]}, seeded. */
  public TextCorpus[] split(double validationFraction, long seed) {
    if (!(validationFraction > 0 && validationFraction < 1)) {
      throw new IllegalArgumentException("the validation fraction must lie in (0, 1), got " + validationFraction);
    }
    if (documents.size() < 2) {
      throw new IllegalArgumentException("a validation split by document needs at least 2 documents, found "
          + documents.size() + "; name validation text explicitly");
    }
    List<Document> order = new ArrayList<>(documents);
    Collections.shuffle(order, new Random(seed));
    int n = Math.max(1, Math.min(documents.size() - 1, (int) Math.round(validationFraction * documents.size())));
    List<Document> validation = new ArrayList<>(order.subList(0, n));
    List<Document> train = new ArrayList<>(documents);
    train.removeAll(validation);
    return new TextCorpus[] {new TextCorpus(train, warnings), new TextCorpus(validation, List.of())};
  }

  public List<Document> documents() {
    return documents;
  }

  /** One line per file whose bytes were not valid UTF-8. */
  public List<String> warnings() {
    return warnings;
  }

  /** SHA-256 (hex) over the documents' texts in order: what a training record names as its data. */
  public String digest() {
    try {
      java.security.MessageDigest md = java.security.MessageDigest.getInstance("SHA-256");
      for (Document d : documents) {
        byte[] text = d.text().getBytes(StandardCharsets.UTF_8);
        md.update(ByteBuffer.allocate(8).putLong(text.length).array());
        md.update(text);
      }
      return java.util.HexFormat.of().formatHex(md.digest());
    } catch (java.security.NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  private static List<Path> filesUnder(Path root) {
    if (!Files.isDirectory(root)) {
      return List.of(root);
    }
    try (Stream<Path> s = Files.walk(root, java.nio.file.FileVisitOption.FOLLOW_LINKS)) {
      return s.filter(Files::isRegularFile)
          .filter(p -> p.getFileName().toString().toLowerCase(Locale.ROOT).endsWith(".txt")).sorted().toList();
    } catch (IOException e) {
      throw new UncheckedIOException("cannot list " + root, e);
    }
  }

  /** Text and the byte offsets of malformed sequences. */
  record Decoded(String text, List<Long> badOffsets) {}

  static Decoded decode(byte[] bytes) {
    CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
        .onUnmappableCharacter(CodingErrorAction.REPORT);
    ByteBuffer in = ByteBuffer.wrap(bytes);
    if (bytes.length >= 3 && (bytes[0] & 0xff) == 0xEF && (bytes[1] & 0xff) == 0xBB && (bytes[2] & 0xff) == 0xBF) {
      in.position(3);
    }
    CharBuffer out = CharBuffer.allocate(bytes.length + 1);
    List<Long> bad = new ArrayList<>();
    while (true) {
      CoderResult r = decoder.decode(in, out, true);
      if (r.isError()) {
        bad.add((long) in.position());
        in.position(in.position() + r.length());
        out.put('\uFFFD');
      } else if (r.isOverflow()) {
        CharBuffer bigger = CharBuffer.allocate(out.capacity() * 2);
        out.flip();
        bigger.put(out);
        out = bigger;
      } else {
        break;
      }
    }
    decoder.flush(out);
    out.flip();
    return new Decoded(out.toString(), bad);
  }
}
