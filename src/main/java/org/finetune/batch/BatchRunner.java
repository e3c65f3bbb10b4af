package org.finetune.batch;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.gson.JsonPrimitive;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.OptionalDouble;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.Function;
import org.finetune.export.AtomicFiles;
import org.finetune.export.Checkpoint;
import org.finetune.export.CheckpointCallback;
import org.finetune.export.TrainingPosition;
import org.finetune.job.FineTuneResult;
import org.finetune.job.JobSpec;
import org.finetune.train.EarlyStopping;
import org.finetune.train.Fit;

/**
 * Runs a batch's jobs, each as a child process that runs its job file, one after another or
 * {@code parallel} at a time with the machine's cores split between them (TensorFlow's
 * {@code TF_NUM_INTRAOP_THREADS}). A job that fails does not stop the others. Each job has a run
 * folder ({@code <runs>/<name>/}: {@code job.json}, {@code log.txt}, {@code history.csv},
 * {@code checkpoints/}, {@code result.json}, {@code outcome.json}); a job whose export is complete is skipped on a rerun,
 * and one that was interrupted resumes from its last checkpoint, so a killed batch continues where
 * it stopped. A run is judged from the result its child writes ({@link FineTuneResult#write}), every
 * epoch across resumes; one that failed, from the epochs its last checkpoint records.
 */
public final class BatchRunner {
  /** The result file a child writes in its run folder. */
  static final String RESULT = "result.json";
  /** The job file a child runs, in its run folder. */
  public static final String JOB = "job.json";

  /** How a job ended. */
  public enum Status { DONE, SKIPPED, FAILED }

  /**
   * One job's result.
   *
   * @param metric the history column judged ({@code val_accuracy}, higher is better; or a loss or
   *     perplexity, lower is better); "" when there is no history
   * @param best its best value over the epochs
   * @param message the failure's last line, or where the export is
   */
  public record Outcome(Job job, Status status, String metric, OptionalDouble best, int epochs, double seconds,
      String message) {
    public boolean higherIsBetter() {
      return org.finetune.train.EarlyStopping.higherIsBetter(metric);
    }
  }

  /** Progress: a job started or finished, and every line a job prints. */
  public interface Listener {
    void started(Job job, int index, int total);

    void line(Job job, String line);

    void finished(Outcome outcome, int finished, int total);
  }

  /**
   * @param runJob the command line that runs one job file ({@link JobSpec}) in a child process: the
   *     front end's own (the command line's starts java with its {@code train} command)
   * @param runs where run folders and the summary go
   * @param parallel jobs at a time
   * @param cores cores to split between them
   */
  public record Options(Function<Path, List<String>> runJob, Path runs, int parallel, int cores) {
    public Options {
      Objects.requireNonNull(runJob, "runJob");
      if (parallel < 1) {
        throw new IllegalArgumentException("a batch runs at least 1 job at a time, got " + parallel);
      }
    }

    /** Intra-op threads per job. */
    public int threadsPerJob() {
      return Math.max(1, cores / parallel);
    }
  }

  private final Options options;
  private final Set<Process> running = ConcurrentHashMap.newKeySet();

  public BatchRunner(Options options) {
    this.options = options;
  }

  /** Runs every job; outcomes in the jobs' order. */
  public List<Outcome> run(List<Job> jobs, Listener listener) {
    try {
      Files.createDirectories(options.runs());
    } catch (IOException e) {
      throw new UncheckedIOException("cannot create " + options.runs(), e);
    }
    Thread reaper = new Thread(() -> running.forEach(Process::destroy), "finetune-batch-shutdown");
    Runtime.getRuntime().addShutdownHook(reaper);
    ExecutorService pool = Executors.newFixedThreadPool(options.parallel(), r -> {
      Thread t = new Thread(r, "finetune-batch");
      t.setDaemon(true);
      return t;
    });
    int[] finished = {0};
    try {
      List<Future<Outcome>> futures = new ArrayList<>();
      for (int i = 0; i < jobs.size(); i++) {
        Job job = jobs.get(i);
        int index = i;
        futures.add(pool.submit(() -> {
          Outcome o;
          try {
            o = runOne(job, index, jobs.size(), listener);
          } catch (IOException | RuntimeException e) {
            o = new Outcome(job, Status.FAILED, "", OptionalDouble.empty(), 0, 0, "could not run: " + e.getMessage());
          }
          synchronized (finished) {
            finished[0]++;
            listener.finished(o, finished[0], jobs.size());
          }
          return o;
        }));
      }
      List<Outcome> out = new ArrayList<>();
      for (Future<Outcome> f : futures) {
        try {
          out.add(f.get());
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new IllegalStateException("interrupted", e);
        } catch (java.util.concurrent.ExecutionException e) {
          throw new IllegalStateException("the batch runner failed: " + e.getCause(), e.getCause());
        }
      }
      try {
        writeSummary(out);
      } catch (IOException e) {
        throw new UncheckedIOException("cannot write the summary in " + options.runs(), e);
      }
      return out;
    } finally {
      pool.shutdownNow();
      running.forEach(Process::destroy);
      try {
        Runtime.getRuntime().removeShutdownHook(reaper);
      } catch (IllegalStateException e) {
        // Already shutting down: the hook runs.
      }
    }
  }

  /** The run folder of a job. */
  public Path runDir(Job job) {
    return options.runs().resolve(job.name());
  }

  private Outcome runOne(Job job, int index, int total, Listener listener) throws IOException {
    Path dir = runDir(job);
    Files.createDirectories(dir);
    Path history = dir.resolve("history.csv");
    if (Files.isRegularFile(job.out().resolve("saved_model.pb"))) {
      return judged(job, Status.SKIPPED, dir, previousSeconds(dir), "complete: " + job.out());
    }
    Files.deleteIfExists(dir.resolve(RESULT));
    Path last = dir.resolve("checkpoints").resolve(CheckpointCallback.LAST);
    // A run killed while replacing its checkpoint has it moved aside; recover() puts it back.
    boolean resuming = Checkpoint.recover(last) && Files.isDirectory(last);
    if (!resuming) {
      Files.deleteIfExists(history);
    }
    JobSpec spec = job.spec().with("history", new JsonPrimitive(history.toString()))
        .with("checkpoints", new JsonPrimitive(dir.resolve("checkpoints").toString()))
        .with("result", new JsonPrimitive(dir.resolve(RESULT).toString()));
    if (resuming) {
      spec = spec.with("resume", new JsonPrimitive(last.toString()));
    }
    Path jobFile = dir.resolve(JOB);
    spec.write(jobFile);
    List<String> command = List.copyOf(options.runJob().apply(jobFile));
    listener.started(job, index, total);
    long start = System.nanoTime();
    ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true);
    pb.environment().put("TF_NUM_INTRAOP_THREADS", Integer.toString(options.threadsPerJob()));
    pb.environment().put("TF_NUM_INTEROP_THREADS", "1");
    pb.environment().put("TF_CPP_MIN_LOG_LEVEL", "2");
    Process p = pb.start();
    running.add(p);
    String lastLine = "";
    try (Writer log = Files.newBufferedWriter(dir.resolve("log.txt"), StandardCharsets.UTF_8,
            java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.APPEND);
        BufferedReader in = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
      log.write("$ " + String.join(" ", command) + System.lineSeparator());
      String line;
      while ((line = in.readLine()) != null) {
        log.write(line + System.lineSeparator());
        log.flush();
        if (!line.isBlank()) {
          lastLine = line;
        }
        listener.line(job, line);
      }
      int exit = p.waitFor();
      double seconds = previousSeconds(dir) * (resuming ? 1 : 0) + (System.nanoTime() - start) / 1e9;
      Outcome o = exit == 0 && Files.isRegularFile(job.out().resolve("saved_model.pb"))
          ? judged(job, Status.DONE, dir, seconds, "exported to " + job.out())
          : judged(job, Status.FAILED, dir, seconds, "exit " + exit + ": " + lastLine);
      writeOutcome(dir, o);
      return o;
    } catch (InterruptedException e) {
      p.destroy();
      Thread.currentThread().interrupt();
      return judged(job, Status.FAILED, dir, (System.nanoTime() - start) / 1e9, "interrupted");
    } finally {
      running.remove(p);
    }
  }

  private static double previousSeconds(Path dir) {
    Path f = dir.resolve("outcome.json");
    try {
      return Files.isRegularFile(f) ? JsonParser.parseString(Files.readString(f)).getAsJsonObject().get("seconds")
          .getAsDouble() : 0;
    } catch (IOException | RuntimeException e) {
      return 0;
    }
  }

  /**
   * The outcome judged from what the run recorded: its result file when it finished, else the epochs
   * its last checkpoint holds (a failed or killed run).
   */
  static Outcome judged(Job job, Status status, Path dir, double seconds, String message) {
    List<Fit.Epoch> epochs = List.of();
    try {
      Path result = dir.resolve(RESULT);
      Path last = dir.resolve("checkpoints").resolve(CheckpointCallback.LAST);
      if (Files.isRegularFile(result)) {
        epochs = FineTuneResult.read(result).allEpochs();
      } else if (Files.isDirectory(last)) {
        epochs = TrainingPosition.of(Checkpoint.read(last)).history();
      }
    } catch (RuntimeException e) {
      message = message + " (result unreadable: " + e.getMessage() + ")";
    }
    List<String> preferred = job.task().equals("causal-lm")
        ? List.of("val_perplexity", "val_loss", "perplexity", "loss")
        : List.of("val_accuracy", "val_loss", "accuracy", "loss");
    String metric = epochs.isEmpty() ? "" : preferred.stream().filter(epochs.get(0).logs()::containsKey).findFirst()
        .orElse("");
    OptionalDouble best = OptionalDouble.empty();
    if (!metric.isEmpty()) {
      boolean higher = EarlyStopping.higherIsBetter(metric);
      String m = metric;
      best = epochs.stream().map(e -> e.logs().get(m)).filter(v -> v != null && Double.isFinite(v))
          .mapToDouble(Double::doubleValue).reduce(higher ? Math::max : Math::min);
    }
    return new Outcome(job, status, metric, best, epochs.size(), seconds, message);
  }

  private static void writeOutcome(Path dir, Outcome o) throws IOException {
    JsonObject j = json(o);
    AtomicFiles.writeString(dir.resolve("outcome.json"), new GsonBuilder().setPrettyPrinting().create().toJson(j));
  }

  private static JsonObject json(Outcome o) {
    JsonObject j = new JsonObject();
    j.addProperty("job", o.job().name());
    j.addProperty("sweep", o.job().sweep());
    JsonObject settings = new JsonObject();
    o.job().settings().forEach(settings::addProperty);
    j.add("settings", settings);
    j.addProperty("status", o.status().name().toLowerCase(Locale.ROOT));
    j.addProperty("metric", o.metric());
    if (o.best().isPresent()) {
      j.addProperty("best", o.best().getAsDouble());
    }
    j.addProperty("epochs", o.epochs());
    j.addProperty("seconds", o.seconds());
    j.addProperty("output", o.job().out().toString());
    j.addProperty("message", o.message());
    return j;
  }

  /** The best finished job (done or skipped as complete) by its metric, if any has one. */
  public static java.util.Optional<Outcome> best(List<Outcome> outcomes) {
    Outcome best = null;
    for (Outcome o : outcomes) {
      if (o.status() == Status.FAILED || o.best().isEmpty()) {
        continue;
      }
      if (best == null) {
        best = o;
        continue;
      }
      if (!o.metric().equals(best.metric())) {
        continue;
      }
      double a = o.best().getAsDouble();
      double b = best.best().getAsDouble();
      if (o.higherIsBetter() ? a > b : a < b) {
        best = o;
      }
    }
    return java.util.Optional.ofNullable(best);
  }

  /** summary.csv and summary.json in the runs folder. */
  private void writeSummary(List<Outcome> outcomes) throws IOException {
    java.util.Optional<Outcome> best = best(outcomes);
    StringBuilder csv = new StringBuilder("job,status,metric,best,epochs,seconds,output,best_job,settings,message\n");
    JsonArray all = new JsonArray();
    for (Outcome o : outcomes) {
      boolean isBest = best.isPresent() && best.get() == o;
      csv.append(String.join(",", o.job().name(), o.status().name().toLowerCase(Locale.ROOT), o.metric(),
          o.best().isPresent() ? Double.toString(o.best().getAsDouble()) : "", Integer.toString(o.epochs()),
          String.format(Locale.ROOT, "%.1f", o.seconds()), csvCell(o.job().out().toString()), Boolean.toString(isBest),
          csvCell(o.job().describeSettings()), csvCell(o.message()))).append('\n');
      JsonObject j = json(o);
      j.addProperty("best_job", isBest);
      all.add(j);
    }
    Files.writeString(options.runs().resolve("summary.csv"), csv.toString());
    JsonObject root = new JsonObject();
    root.add("jobs", all);
    best.ifPresent(b -> root.addProperty("best", b.job().name()));
    Files.writeString(options.runs().resolve("summary.json"), new GsonBuilder().setPrettyPrinting().create()
        .toJson(root));
  }

  private static String csvCell(String s) {
    return s.contains(",") || s.contains("\"") || s.contains("\n") ? "\"" + s.replace("\"", "\"\"") + "\"" : s;
  }

  /** The summary as a table. */
  public static List<String> table(List<Outcome> outcomes) {
    java.util.Optional<Outcome> best = best(outcomes);
    List<String> rows = new ArrayList<>();
    rows.add(String.format(Locale.ROOT, "  %-22s %-8s %-16s %10s %6s %8s  %s", "job", "status", "metric", "best",
        "epochs", "time", "output / message"));
    for (Outcome o : outcomes) {
      rows.add(String.format(Locale.ROOT, "%s %-22s %-8s %-16s %10s %6d %7.1fs  %s",
          best.isPresent() && best.get() == o ? "*" : " ", o.job().name(), o.status().name().toLowerCase(Locale.ROOT),
          o.metric(), o.best().isPresent() ? String.format(Locale.ROOT, "%.4f", o.best().getAsDouble()) : "-",
          o.epochs(), o.seconds(), o.status() == Status.FAILED ? o.message() : o.job().out().toString()));
    }
    return Collections.unmodifiableList(rows);
  }
}
