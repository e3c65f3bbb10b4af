package org.finetune.export;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

/**
 * A directory written out of sight and published whole: the content goes into a temporary
 * sibling of the target, every file and directory is synced, then one rename makes it the
 * target. A failure before {@link #commit()} leaves the target as it was and removes the
 * temporary directory. An existing target is refused unless overwriting was asked for; then it
 * is moved aside first and deleted only after the new one is in place.
 */
final class AtomicDirectory implements AutoCloseable {
  private final Path target;
  private final Path temp;
  private final boolean overwrite;
  private boolean committed;

  private AtomicDirectory(Path target, Path temp, boolean overwrite) {
    this.target = target;
    this.temp = temp;
    this.overwrite = overwrite;
  }

  /**
   * Starts writing {@code target}.
   *
   * @throws FileAlreadyExistsException when it exists and {@code overwrite} is false
   */
  static AtomicDirectory begin(Path target, boolean overwrite) throws IOException {
    Path t = target.toAbsolutePath().normalize();
    if (Files.exists(t, java.nio.file.LinkOption.NOFOLLOW_LINKS) && !overwrite) {
      throw new FileAlreadyExistsException(t.toString(), null, "the output exists; choose another or overwrite it");
    }
    if (Files.exists(t) && !Files.isDirectory(t)) {
      throw new FileAlreadyExistsException(t.toString(), null, "the output exists and is not a directory");
    }
    Files.createDirectories(t.getParent());
    Path temp = Files.createTempDirectory(t.getParent(), "." + t.getFileName() + ".tmp-");
    return new AtomicDirectory(t, temp, overwrite);
  }

  /** Where to write the content. */
  Path dir() {
    return temp;
  }

  /** Syncs everything written and renames it into place. */
  void commit() throws IOException {
    syncTree(temp);
    Path old = null;
    if (Files.exists(target)) {
      if (!overwrite) {
        throw new FileAlreadyExistsException(target.toString(), null, "the output appeared while writing");
      }
      old = Files.createTempDirectory(target.getParent(), "." + target.getFileName() + ".old-");
      Files.delete(old);
      move(target, old);
    }
    move(temp, target);
    sync(target.getParent());
    committed = true;
    if (old != null) {
      deleteTree(old);
    }
  }

  @Override
  public void close() {
    if (!committed) {
      try {
        deleteTree(temp);
      } catch (IOException e) {
        throw new UncheckedIOException("cannot remove the unfinished " + temp + ": " + e.getMessage(), e);
      }
    }
  }

  private static void move(Path from, Path to) throws IOException {
    try {
      Files.move(from, to, StandardCopyOption.ATOMIC_MOVE);
    } catch (AtomicMoveNotSupportedException e) {
      Files.move(from, to);
    }
  }

  private static void syncTree(Path root) throws IOException {
    List<Path> all;
    try (Stream<Path> walk = Files.walk(root)) {
      all = walk.sorted(Comparator.reverseOrder()).toList();
    }
    for (Path p : all) {
      sync(p);
    }
  }

  private static void sync(Path p) throws IOException {
    if (Files.isDirectory(p)) {
      try (FileChannel ch = FileChannel.open(p, StandardOpenOption.READ)) {
        ch.force(true);
      } catch (IOException e) {
        // Some file systems cannot open a directory for syncing; its files are synced already.
      }
    } else {
      try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
        ch.force(true);
      }
    }
  }

  static void deleteTree(Path root) throws IOException {
    if (!Files.exists(root, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
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
}
