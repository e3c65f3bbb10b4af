package org.finetune.testing;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.stream.Stream;

/** A SHA-256 over every file's relative path and bytes under a directory: proves we wrote nothing there. */
public final class TreeDigest {
  private TreeDigest() {}

  public static String of(Path dir) {
    return org.finetune.export.DirectoryDigest.of(dir);
  }

  /** Copies a directory tree (for tests that damage a copy of a fixture). */
  public static void copy(Path from, Path to) {
    try (Stream<Path> walk = Files.walk(from)) {
      for (Path p : walk.toList()) {
        Path target = to.resolve(from.relativize(p).toString());
        if (Files.isDirectory(p)) {
          Files.createDirectories(target);
        } else {
          Files.copy(p, target);
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
