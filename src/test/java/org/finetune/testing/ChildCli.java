package org.finetune.testing;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * {@code finetune} as a child process: the test's own JVM binary and class path, output lines
 * kept with the time they arrived, and a SIGKILL for it and everything it started. The tests
 * that kill the command line at random moments use it; a kill is the real thing, not a flag the
 * product could notice.
 */
public final class ChildCli {
  /** One output line and when it arrived, in seconds since the start. */
  public record Line(double seconds, String text) {}

  private final Process process;
  private final long startNanos;
  private final List<Line> lines = new ArrayList<>();
  private final Thread reader;

  private ChildCli(Process process, long startNanos) {
    this.process = process;
    this.startNanos = startNanos;
    this.reader = new Thread(this::read, "child-cli-output");
    this.reader.setDaemon(true);
    this.reader.start();
  }

  /** Starts {@code finetune ARGS...} (stdout and stderr together). */
  public static ChildCli start(String... args) {
    // C1 only and the serial collector: a short-lived child starts in about half the time on a
    // busy 2-core machine (no C2 or parallel GC threads competing for the cores). Neither changes
    // a result: Java's float arithmetic is IEEE whatever compiles it, and TensorFlow computes natively.
    List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-Xmx1g", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp", System.getProperty("java.class.path"),
        "org.finetune.cli.Main"));
    command.addAll(List.of(args));
    ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true);
    pb.environment().put("TF_CPP_MIN_LOG_LEVEL", "2");
    try {
      long start = System.nanoTime();
      Process p = pb.start();
      p.getOutputStream().close();
      return new ChildCli(p, start);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot start " + command, e);
    }
  }

  private void read() {
    try (BufferedReader in = new BufferedReader(new InputStreamReader(process.getInputStream(),
        StandardCharsets.UTF_8))) {
      String line;
      while ((line = in.readLine()) != null) {
        synchronized (lines) {
          lines.add(new Line(elapsed(), line));
        }
      }
    } catch (IOException e) {
      // The pipe breaks when the child is killed; what was read is kept.
    }
  }

  /** Seconds since the start. */
  public double elapsed() {
    return (System.nanoTime() - startNanos) / 1e9;
  }

  public long pid() {
    return process.pid();
  }

  public boolean alive() {
    return process.isAlive();
  }

  /** The lines read so far. */
  public List<Line> lines() {
    synchronized (lines) {
      return List.copyOf(lines);
    }
  }

  /** Everything it printed, for failure messages. */
  public String output() {
    return String.join("\n", lines().stream().map(Line::text).toList());
  }

  /** Sleeps until {@code seconds} after the start or until the child ends, whichever is first. */
  public void sleepUntil(double seconds) throws InterruptedException {
    long remainingMs;
    while ((remainingMs = (long) ((seconds - elapsed()) * 1000)) > 0 && process.isAlive()) {
      process.waitFor(Math.min(remainingMs, 50), TimeUnit.MILLISECONDS);
    }
  }

  /**
   * Sends SIGKILL to the child and every process it started ({@link Process#destroyForcibly()}
   * is SIGKILL on Linux) and waits for them; true when it was still running, false when it had
   * ended on its own.
   */
  public boolean kill() throws Exception {
    List<ProcessHandle> tree = new ArrayList<>(process.descendants().toList());
    tree.add(process.toHandle());
    boolean wasAlive = process.isAlive();
    tree.forEach(ProcessHandle::destroyForcibly);
    if (!process.waitFor(60, TimeUnit.SECONDS)) {
      throw new IllegalStateException("the killed child " + process.pid() + " did not end");
    }
    for (ProcessHandle h : tree) {
      h.onExit().get(60, TimeUnit.SECONDS);
    }
    reader.join(10_000);
    return wasAlive;
  }

  /** Waits for the child to end on its own; its exit code. */
  public int await(long timeoutSeconds) throws Exception {
    if (!process.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
      kill();
      throw new IllegalStateException("the child did not finish in " + timeoutSeconds + " s:\n" + output());
    }
    reader.join(10_000);
    return process.exitValue();
  }

  /** The exit code of an ended child; SIGKILL reads as 137. */
  public int exitCode() {
    return process.exitValue();
  }
}
