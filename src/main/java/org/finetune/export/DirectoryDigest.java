package org.finetune.export;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.stream.Stream;

/**
 * SHA-256 over a directory tree: every regular file's path relative to the root (sorted, with
 * '/' separators), its length and its bytes. Equal digests mean equal trees; provenance records
 * the base model's, and tests check that inputs stay untouched.
 */
public final class DirectoryDigest {
  private DirectoryDigest() {}

  public static String of(Path root) {
    MessageDigest sha;
    try {
      sha = MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
    List<Path> files;
    try (Stream<Path> walk = Files.walk(root)) {
      files = walk.filter(Files::isRegularFile).sorted().toList();
    } catch (IOException e) {
      throw new UncheckedIOException("cannot list " + root + ": " + e.getMessage(), e);
    }
    byte[] buffer = new byte[1 << 16];
    for (Path f : files) {
      String rel = root.relativize(f).toString().replace(f.getFileSystem().getSeparator(), "/");
      sha.update(rel.getBytes(StandardCharsets.UTF_8));
      sha.update((byte) 0);
      try (InputStream in = Files.newInputStream(f)) {
        sha.update(Long.toString(Files.size(f)).getBytes(StandardCharsets.US_ASCII));
        sha.update((byte) 0);
        for (int n; (n = in.read(buffer)) > 0; ) {
          sha.update(buffer, 0, n);
        }
      } catch (IOException e) {
        throw new UncheckedIOException("cannot read " + f + ": " + e.getMessage(), e);
      }
    }
    return "sha256:" + HexFormat.of().formatHex(sha.digest());
  }
}
