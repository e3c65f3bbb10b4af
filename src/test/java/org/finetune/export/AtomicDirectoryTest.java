package org.finetune.export;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What a writer killed part-way leaves beside its target, and how the next writer or reader
 * settles it. The states are the ones a SIGKILL can leave between the steps of a commit (the
 * kill trials in {@code cli.ExportKillTest} and {@code cli.TrainKillTest} meet them at random);
 * here each is built on purpose, with the process id of a process that has really ended.
 */
class AtomicDirectoryTest {
  @TempDir
  Path tmp;

  /** The id of a process that has ended. */
  private static long deadPid() throws Exception {
    Process p = new ProcessBuilder("true").start();
    assertTrue(p.waitFor(30, TimeUnit.SECONDS));
    return p.pid();
  }

  private static Path dirWith(Path dir, String file, String content) throws IOException {
    Files.createDirectories(dir);
    Files.writeString(dir.resolve(file), content);
    return dir;
  }

  private List<String> names() throws IOException {
    try (Stream<Path> list = Files.list(tmp)) {
      return list.map(p -> p.getFileName().toString()).sorted().toList();
    }
  }

  @Test
  void aTargetMovedAsideByAKilledReplacementIsPutBack() throws Exception {
    long dead = deadPid();
    // Killed between "move the old target aside" and "rename the new one into place".
    dirWith(tmp.resolve(".last.old-" + dead + "-17"), "state.json", "previous");
    dirWith(tmp.resolve(".last.tmp-" + dead + "-18"), "state.json", "new, complete but never renamed");
    assertTrue(AtomicDirectory.recover(tmp.resolve("last")));
    assertEquals(List.of("last"), names());
    assertEquals("previous", Files.readString(tmp.resolve("last").resolve("state.json")));
  }

  @Test
  void leftoversOfADeadWriterAreDeletedAndALiveWritersAreKept() throws Exception {
    long dead = deadPid();
    long alive = ProcessHandle.current().pid();
    dirWith(tmp.resolve("model"), "saved_model.pb", "current");
    dirWith(tmp.resolve(".model.tmp-" + dead + "-1"), "saved_model.pb", "half");
    // Killed after the new target arrived: the superseded one, whole or half deleted.
    dirWith(tmp.resolve(".model.old-" + dead + "-2"), "saved_model.pb", "superseded");
    dirWith(tmp.resolve(".model.del-" + dead + "-3"), "x", "half deleted");
    dirWith(tmp.resolve(".model.tmp-" + alive + "-4"), "saved_model.pb", "being written now");
    dirWith(tmp.resolve(".model-notes.tmp-" + dead + "-5"), "x", "another target's");
    try (AtomicDirectory atomic = AtomicDirectory.begin(tmp.resolve("model"), true)) {
      Files.writeString(atomic.dir().resolve("saved_model.pb"), "next");
      atomic.commit();
    }
    assertEquals(List.of(".model-notes.tmp-" + dead + "-5", ".model.tmp-" + alive + "-4", "model"), names());
    assertEquals("next", Files.readString(tmp.resolve("model").resolve("saved_model.pb")));
  }

  @Test
  void anUnfinishedExportOfADeadWriterDoesNotStopTheNext() throws Exception {
    long dead = deadPid();
    dirWith(tmp.resolve(".model.tmp-" + dead + "-9"), "saved_model.pb", "half");
    assertFalse(AtomicDirectory.recover(tmp.resolve("model")), "an unfinished copy is no target");
    assertEquals(List.of(), names());
    dirWith(tmp.resolve(".model.tmp-" + dead + "-9"), "saved_model.pb", "half");
    try (AtomicDirectory atomic = AtomicDirectory.begin(tmp.resolve("model"), false)) {
      Files.writeString(atomic.dir().resolve("saved_model.pb"), "whole");
      atomic.commit();
    }
    assertEquals(List.of("model"), names());
  }

  @Test
  void aCheckpointReadAfterAKilledSaveIsThePreviousOne() throws Exception {
    long dead = deadPid();
    Path aside = tmp.resolve(".last.old-" + dead + "-3");
    dirWith(aside, Checkpoint.STATE, "{}");
    Files.writeString(aside.resolve(Checkpoint.PLAN), "{}");
    assertTrue(Checkpoint.recover(tmp.resolve("last")));
    assertTrue(Files.isRegularFile(tmp.resolve("last").resolve(Checkpoint.PLAN)));
    assertEquals(List.of("last"), names());
  }
}
