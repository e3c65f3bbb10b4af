package org.finetune.cli;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import org.apache.commons.cli.CommandLine;
import org.apache.commons.cli.Option;
import org.apache.commons.cli.Options;
import org.finetune.export.Checkpoint;
import org.finetune.export.DirectoryDigest;
import org.finetune.export.ExportOptions;
import org.finetune.export.ExportResult;
import org.finetune.export.Exporter;
import org.finetune.model.KerasSavedModel;
import org.finetune.train.Trainer;

/** {@code finetune export CHECKPOINT --out DIR}: a training checkpoint as a SavedModel Python loads. */
final class ExportCommand implements Command {
  @Override
  public String name() {
    return "export";
  }

  @Override
  public String synopsis() {
    return "CHECKPOINT --out DIR [--model DIR] [--serving-version N] [--overwrite]";
  }

  @Override
  public String summary() {
    return "write a training checkpoint as a SavedModel that Python (tf.saved_model.load, TFSMLayer) loads";
  }

  @Override
  public String details() {
    return "Opens the checkpoint's base model, restores the trained weights and writes a SavedModel:\n"
        + "the base model's own graph and signatures when the architecture is unchanged, or a new graph\n"
        + "with one signature, serving_default (output_0), when the plan put a new head on it. The export\n"
        + "carries assets/finetune.json (base model digest, plan, steps, versions). It is written into a\n"
        + "temporary sibling and renamed into place; the base model is only read.";
  }

  @Override
  public Options options() {
    Options o = new Options();
    o.addOption(ModelFlags.allowUnsafeOps());
    ModelFlags.addRuntime(o);
    o.addOption(Option.builder().longOpt("out").hasArg().argName("DIR").desc("where to write the SavedModel").build());
    o.addOption(Option.builder().longOpt("model").hasArg().argName("DIR")
        .desc("the base model, if it moved since the checkpoint was written (its digest must match)").build());
    o.addOption(Option.builder().longOpt("serving-version").hasArg().argName("N")
        .desc("write TF Serving's layout, DIR/N/").build());
    o.addOption(Option.builder().longOpt("overwrite").desc("replace DIR if it exists").build());
    return o;
  }

  @Override
  public int run(CommandLine line, PrintWriter out, PrintWriter err) {
    List<String> args = line.getArgList();
    if (args.size() != 1) {
      throw new UsageException("give one checkpoint directory: finetune export CHECKPOINT --out DIR");
    }
    if (!line.hasOption("out")) {
      throw new UsageException("--out DIR is required: where to write the SavedModel");
    }
    Path checkpointDir = Path.of(args.get(0));
    // A save killed mid-way may have left the checkpoint moved aside; recover() puts it back.
    if (!Checkpoint.recover(checkpointDir) || !Files.isDirectory(checkpointDir)) {
      throw new UsageException("no checkpoint directory " + checkpointDir);
    }
    Checkpoint.Info info;
    try {
      info = Checkpoint.read(checkpointDir);
    } catch (IllegalArgumentException e) {
      throw new UsageException(Flags.message(e));
    }
    Path model = line.hasOption("model") ? Path.of(line.getOptionValue("model")) : info.model();
    if (!Files.isDirectory(model)) {
      throw new UsageException("the base model " + model + " is gone; give its new place with --model DIR");
    }
    String digest = DirectoryDigest.of(model);
    if (!digest.equals(info.modelDigest())) {
      throw new UsageException("the base model " + model + " is not the one the checkpoint was trained from (digest "
          + digest + ", checkpoint says " + info.modelDigest() + ")");
    }
    ExportOptions options = ExportOptions.defaults().overwriting(line.hasOption("overwrite"));
    if (line.hasOption("serving-version")) {
      try {
        options = options.servingVersion(Long.parseLong(line.getOptionValue("serving-version")));
      } catch (NumberFormatException e) {
        throw new UsageException("--serving-version must be a whole number, got '"
            + line.getOptionValue("serving-version") + "'");
      } catch (IllegalArgumentException e) {
        throw new UsageException(Flags.message(e));
      }
    }
    if (info.extra().has("epochs")) {
      options = options.trainingRecord(info.extra().get("epochs").getAsLong(), Map.of(), Optional.empty());
    }
    try (KerasSavedModel base = ModelFlags.open(model, line); Trainer trainer = new Trainer(base, info.plan())) {
      Checkpoint.restore(trainer, info);
      ExportResult result;
      try {
        result = Exporter.export(trainer, Path.of(line.getOptionValue("out")), options);
      } catch (IllegalArgumentException e) {
        throw new UsageException(Flags.message(e));
      }
      out.printf(Locale.ROOT, "Exported %s SavedModel to %s (%d variables, %.1f MB) from %s after %d optimizer steps.%n",
          result.mode() == ExportResult.Mode.NEW_HEAD ? "a new-head" : "a same-architecture", result.dir(),
          result.variables(), result.bytes() / 1e6, checkpointDir, info.iterations());
      out.println("Python: " + result.python());
      return ExitCode.OK;
    }
  }
}
