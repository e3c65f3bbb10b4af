package org.finetune.export;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

/**
 * A directory written out of sight and published whole: the content goes into a temporary
 * sibling of the target, every file and directory is synced, then one rename makes it the
 * target. A failure before {@link #commit()} leaves the target as it was and removes the
 * temporary directory. An existing target is refused unless overwriting was asked for; then it
 * is moved aside first and deleted only after the new one is in place.
 *
 * <p>A process killed part-way (SIGKILL, power loss) cannot clean up, so the siblings carry the
 * writer's process id ({@code .NAME.tmp-PID-*}, {@code .NAME.old-PID-*}, {@code .NAME.del-PID-*})
 * and the next writer, or a reader through {@link #recover}, settles what a dead one left: an
 * unfinished temporary directory is deleted; a target moved aside ({@code old}) whose replacement
 * never arrived is put back, since it is the complete previous content; one being deleted after
 * its replacement arrived ({@code del}) is deleted. Siblings of a live process are left alone. A
 * writer in another PID namespace on a shared file system looks dead; the worst that does is fail
 * its commit, never leave a partial target.
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
    recover(t);
    if (Files.exists(t, LinkOption.NOFOLLOW_LINKS) && !overwrite) {
      throw new FileAlreadyExistsException(t.toString(), null, "the output exists; choose another or overwrite it");
    }
    if (Files.exists(t) && !Files.isDirectory(t)) {
      throw new FileAlreadyExistsException(t.toString(), null, "the output exists and is not a directory");
    }
    Files.createDirectories(t.getParent());
    Path temp = Files.createTempDirectory(t.getParent(), sibling(t, TEMP));
    return new AtomicDirectory(t, temp, overwrite);
  }

  /**
   * Settles what a killed writer of {@code target} left beside it (see the class comment): puts
   * back a target moved aside whose replacement never arrived, and deletes unfinished and
   * superseded copies. Writers call it first; readers may, so that an interrupted replacement
   * reads as the previous content.
   *
   * @return whether {@code target} exists afterwards
   */
  static boolean recover(Path target) throws IOException {
    Path t = target.toAbsolutePath().normalize();
    Path parent = t.getParent();
    if (parent == null || !Files.isDirectory(parent)) {
      return Files.exists(t, LinkOption.NOFOLLOW_LINKS);
    }
    List<Path> dead = new ArrayList<>();
    try (Stream<Path> list = Files.list(parent)) {
      list.filter(p -> leftByDeadWriter(t, p)).forEach(dead::add);
    }
    if (!Files.exists(t, LinkOption.NOFOLLOW_LINKS)) {
      // At most one previous target is moved aside at a time; the newest is the one to restore.
      Path newest = null;
      for (Path p : dead) {
        if (kind(t, p).equals(OLD) && (newest == null
            || Files.getLastModifiedTime(p).compareTo(Files.getLastModifiedTime(newest)) > 0)) {
          newest = p;
        }
      }
      if (newest != null) {
        move(newest, t);
        sync(parent);
        dead.remove(newest);
      }
    }
    for (Path p : dead) {
      AtomicFiles.deleteTree(p);
    }
    return Files.exists(t, LinkOption.NOFOLLOW_LINKS);
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
      old = reserve(target, OLD);
      move(target, old);
    }
    // Killed here, the target is absent and the old one whole under its .old- name: recover() puts it back.
    move(temp, target);
    sync(target.getParent());
    committed = true;
    if (old != null) {
      // Renamed before deleting, so that an .old- sibling is always a complete directory.
      Path doomed = reserve(target, DELETING);
      move(old, doomed);
      AtomicFiles.deleteTree(doomed);
    }
  }

  @Override
  public void close() {
    if (!committed) {
      try {
        AtomicFiles.deleteTree(temp);
      } catch (IOException e) {
        throw new UncheckedIOException("cannot remove the unfinished " + temp + ": " + e.getMessage(), e);
      }
    }
  }

  private static final String TEMP = "tmp";
  private static final String OLD = "old";
  private static final String DELETING = "del";

  /** The name prefix of this process's siblings of {@code target} of one kind: {@code .NAME.KIND-PID-}. */
  private static String sibling(Path target, String kind) {
    return "." + target.getFileName() + "." + kind + "-" + ProcessHandle.current().pid() + "-";
  }

  /** A fresh, not yet existing sibling name of {@code kind}. */
  private static Path reserve(Path target, String kind) throws IOException {
    Path p = Files.createTempDirectory(target.getParent(), sibling(target, kind));
    Files.delete(p);
    return p;
  }

  /** The kind of a sibling {@code p} of {@code target} ({@code tmp}, {@code old}, {@code del}), or "" if it is none. */
  private static String kind(Path target, Path p) {
    String prefix = "." + target.getFileName() + ".";
    String name = p.getFileName().toString();
    if (!name.startsWith(prefix)) {
      return "";
    }
    String rest = name.substring(prefix.length());
    for (String kind : List.of(TEMP, OLD, DELETING)) {
      if (rest.startsWith(kind + "-")) {
        return kind;
      }
    }
    return "";
  }

  /** Whether {@code p} is a sibling of {@code target} written by a process that no longer runs. */
  private static boolean leftByDeadWriter(Path target, Path p) {
    String kind = kind(target, p);
    if (kind.isEmpty()) {
      return false;
    }
    String rest = p.getFileName().toString().substring(target.getFileName().toString().length() + kind.length() + 3);
    int dash = rest.indexOf('-');
    if (dash <= 0) {
      return false;
    }
    long pid;
    try {
      pid = Long.parseLong(rest.substring(0, dash));
    } catch (NumberFormatException e) {
      return false;
    }
    return ProcessHandle.of(pid).map(h -> !h.isAlive()).orElse(true);
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
}
