package org.finetune.export;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

/**
 * Small files written whole or not at all: a reader, or a run killed mid-write, never sees half of
 * one; and directory trees deleted, deepest first.
 */
public final class AtomicFiles {
  private AtomicFiles() {}

  /** Writes {@code text} (UTF-8) beside {@code file}, then moves it into place in one step. */
  public static void writeString(Path file, String text) throws IOException {
    Path parent = file.toAbsolutePath().getParent();
    Files.createDirectories(parent);
    Path tmp = Files.createTempFile(parent, "." + file.getFileName(), ".tmp");
    try {
      Files.writeString(tmp, text, StandardCharsets.UTF_8);
      Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    } finally {
      Files.deleteIfExists(tmp);
    }
  }

  /** Deletes {@code root} and everything under it; nothing when it does not exist. Links are not followed. */
  public static void deleteTree(Path root) throws IOException {
    if (!Files.exists(root, LinkOption.NOFOLLOW_LINKS)) {
      return;
    }
    List<Path> all;
    try (Stream<Path> walk = Files.walk(root)) {
      all = walk.sorted(Comparator.reverseOrder()).toList();
    }
    for (Path p : all) {
      Files.deleteIfExists(p);
    }
  }

  /**
   * {@link #deleteTree} for temporary directories, whose leftovers are harmless: a failure to
   * delete is ignored.
   */
  public static void deleteTemporary(Path root) {
    try {
      deleteTree(root);
    } catch (IOException e) {
      // A temporary directory left behind does not change any result.
    }
  }
}
