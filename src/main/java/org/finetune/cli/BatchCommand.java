package org.finetune.cli;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.apache.commons.cli.CommandLine;
import org.apache.commons.cli.Option;
import org.apache.commons.cli.Options;
import org.finetune.batch.BatchRunner;
import org.finetune.batch.Job;
import org.finetune.batch.JobsFile;

/** {@code finetune batch JOBS.json}: many fine-tuning runs and sweeps, resumable, with a summary. */
final class BatchCommand implements Command {
  @Override
  public String name() {
    return "batch";
  }

  @Override
  public String synopsis() {
    return "JOBS.json [--parallel N] [--runs DIR] [--job-memory SIZE] [--dry-run]";
  }

  @Override
  public String summary() {
    return "run a jobs file of fine-tuning runs and sweeps; resumable; summary table, CSV and JSON";
  }

  @Override
  public String details() {
    return "JOBS.json lists \"jobs\" (a name and a job: the keys of train --job, such as model, data, export,\n"
        + "new_head, epochs, optimizer) and \"sweeps\" (a name, job keys and either \"grid\": {key: [values]} or\n"
        + "\"random\": {key: {log_uniform|uniform|choice: [...]}} with \"trials\" and \"sweep_seed\"; a dotted key\n"
        + "such as optimizer.learning_rate sets a key inside an object); \"defaults\" holds keys every job\n"
        + "shares. Every run is a separate `finetune train --job` process; with --parallel N, N run at a time\n"
        + "and split the cores. A failed run does not stop the others. Each run has a folder under --runs\n"
        + "(default: JOBS.runs/ beside the file) with its job, log, history, checkpoints and result: a rerun\n"
        + "skips runs whose export is complete and resumes interrupted ones from their last checkpoint. The\n"
        + "summary (job, status, best validation metric, epochs, time, output; the best run marked *) is\n"
        + "printed and written as summary.csv and summary.json there.\n"
        + "Exit codes: 0 all runs done, 3 some failed, 1 all failed, 2 bad jobs file.";
  }

  @Override
  public Options options() {
    Options o = new Options();
    o.addOption(Option.builder().longOpt("parallel").hasArg().argName("N").desc("runs at a time (default: 1)").build());
    o.addOption(Option.builder().longOpt("runs").hasArg().argName("DIR")
        .desc("run folders and the summary (default: JOBS.runs beside the jobs file)").build());
    o.addOption(Option.builder().longOpt("job-memory").hasArg().argName("SIZE")
        .desc("Java heap of each run, as for -Xmx (default: 3g)").build());
    o.addOption(Option.builder().longOpt("dry-run").desc("print the runs and their jobs, run nothing").build());
    return o;
  }

  @Override
  public int run(CommandLine line, PrintWriter out, PrintWriter err) {
    List<String> args = line.getArgList();
    if (args.size() != 1) {
      throw new UsageException("give one jobs file: finetune batch JOBS.json");
    }
    Path file = Path.of(args.get(0)).toAbsolutePath();
    if (!Files.isRegularFile(file)) {
      throw new UsageException(file + " does not exist");
    }
    List<Job> jobs;
    try {
      jobs = JobsFile.read(file);
    } catch (IllegalArgumentException e) {
      throw new UsageException(Flags.message(e));
    }
    int parallel = (int) Flags.longValue(line, "parallel", 1);
    if (parallel < 1) {
      throw new UsageException("--parallel must be >= 1, got " + parallel);
    }
    String stem = file.getFileName().toString().replaceFirst("\\.json$", "");
    Path runs = Path.of(line.getOptionValue("runs", file.resolveSibling(stem + ".runs").toString())).toAbsolutePath();
    String memory = line.getOptionValue("job-memory", "3g");
    if (!memory.matches("[0-9]+[kKmMgG]?")) {
      throw new UsageException("--job-memory takes a size like 2g or 1500m, got '" + memory + "'");
    }
    List<String> command = new ArrayList<>();
    command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    command.add("-Xmx" + memory);
    // As scripts/finetune runs the CLI: the serial collector keeps the heap small (the weights live
    // in the runtime, outside it).
    command.add("-XX:+UseSerialGC");
    String home = System.getProperty("finetune.home");
    if (home != null) {
      command.add("-Dfinetune.home=" + home);
    }
    command.addAll(List.of("-cp", System.getProperty("java.class.path"), Main.class.getName()));
    BatchRunner.Options options;
    try {
      options = new BatchRunner.Options(jobFile -> {
        List<String> run = new ArrayList<>(command);
        run.addAll(List.of("train", "--job", jobFile.toString()));
        return run;
      }, runs, parallel, Runtime.getRuntime().availableProcessors());
    } catch (IllegalArgumentException e) {
      throw new UsageException(Flags.message(e));
    }
    out.printf(Locale.ROOT, "Batch %s: %d runs, %d at a time, %d intra-op threads each; run folders in %s%n", file,
        jobs.size(), parallel, options.threadsPerJob(), runs);
    if (line.hasOption("dry-run")) {
      for (Job j : jobs) {
        out.println("  " + j.name() + ": " + j.spec());
      }
      return ExitCode.OK;
    }
    out.flush();
    BatchRunner runner = new BatchRunner(options);
    boolean prefix = parallel > 1;
    List<BatchRunner.Outcome> outcomes = runner.run(jobs, new BatchRunner.Listener() {
      @Override
      public void started(Job job, int index, int total) {
        synchronized (out) {
          out.printf(Locale.ROOT, "[start %d/%d] %s%s%n", index + 1, total, job.name(),
              job.settings().isEmpty() ? "" : " (" + job.describeSettings() + ")");
          out.flush();
        }
      }

      @Override
      public void line(Job job, String text) {
        if (text.startsWith("Epoch ") || text.matches("^\\d+/\\d+ - .*") || text.startsWith("Exported")
            || text.startsWith("Resuming") || text.startsWith("error") || text.startsWith("finetune:")) {
          synchronized (out) {
            out.println((prefix ? job.name() + " | " : "  ") + text);
            out.flush();
          }
        }
      }

      @Override
      public void finished(BatchRunner.Outcome o, int finished, int total) {
        synchronized (out) {
          out.printf(Locale.ROOT, "[done %d/%d] %s: %s%s (%.1f s)%n", finished, total, o.job().name(),
              o.status().name().toLowerCase(Locale.ROOT), o.best().isPresent()
                  ? String.format(Locale.ROOT, ", best %s %.4f", o.metric(), o.best().getAsDouble())
                  : o.status() == BatchRunner.Status.FAILED ? ": " + o.message() : "", o.seconds());
          out.flush();
        }
      }
    });
    out.println();
    BatchRunner.table(outcomes).forEach(out::println);
    out.println("Summary: " + runs.resolve("summary.csv") + " and " + runs.resolve("summary.json")
        + (BatchRunner.best(outcomes).isPresent() ? " (* best)" : ""));
    long failed = outcomes.stream().filter(o -> o.status() == BatchRunner.Status.FAILED).count();
    if (failed == 0) {
      return ExitCode.OK;
    }
    err.printf(Locale.ROOT, "%d of %d runs failed; their logs: %s/<run>/log.txt%n", failed, outcomes.size(), runs);
    return failed == outcomes.size() ? ExitCode.FAILED : ExitCode.PARTLY;
  }
}
