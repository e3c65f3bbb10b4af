package org.finetune.cli;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import org.apache.commons.cli.CommandLine;
import org.apache.commons.cli.Option;
import org.apache.commons.cli.Options;
import org.finetune.model.KerasSavedModel;
import org.finetune.train.ModelCheck;

/** {@code finetune check DIR}: can this model be fine-tuned here, and which layers? */
final class CheckCommand implements Command {
  @Override
  public String name() {
    return "check";
  }

  @Override
  public String synopsis() {
    return "DIR [--signature NAME] [--tag TAGS] [--seed N]";
  }

  @Override
  public String summary() {
    return "check that a SavedModel can be fine-tuned: flatten, compare, find trainable layers, take one step";
  }

  @Override
  public String details() {
    return "Flattens the signature into a differentiable graph and compares it with the original on random\n"
        + "inputs; lists the layers gradients reach and those they cannot, with the reason; runs one SGD step\n"
        + "on random data with a loss suited to the output (cross-entropy for a softmax, the causal-LM loss\n"
        + "for token logits, else mean squared error) and prints the loss before and after.\n"
        + "Exit codes: 0 every trainable layer can be fine-tuned, 3 only some can, 1 none, 2 bad input.";
  }

  @Override
  public Options options() {
    Options o = new Options();
    o.addOption(ModelFlags.allowUnsafeOps());
    o.addOption(Option.builder().longOpt("signature").hasArg().argName("NAME")
        .desc("signature to check (default: serving_default, or the only one)").build());
    o.addOption(Option.builder().longOpt("tag").hasArg().argName("TAGS").desc("MetaGraph tags (default: serve)").build());
    o.addOption(Option.builder().longOpt("seed").hasArg().argName("N").desc("seed of the random data (default: 1234)").build());
    return o;
  }

  @Override
  public int run(CommandLine line, PrintWriter out, PrintWriter err) {
    List<String> args = line.getArgList();
    if (args.size() != 1) {
      throw new UsageException("give one SavedModel directory: finetune check DIR");
    }
    long seed;
    try {
      seed = Long.parseLong(line.getOptionValue("seed", "1234"));
    } catch (NumberFormatException e) {
      throw new UsageException("--seed must be a whole number, got '" + line.getOptionValue("seed") + "'");
    }
    KerasSavedModel.Loader loader = KerasSavedModel.loader(Path.of(args.get(0)))
        .withTags(InspectCommand.parseTags(line.getOptionValue("tag"))).allowingUnsafeOps(ModelFlags.trusting(line));
    if (line.hasOption("signature")) {
      loader = loader.withSignature(line.getOptionValue("signature"));
    }
    try (KerasSavedModel model = loader.load()) {
      String signature = model.info().signature();
      out.println("Model: " + args.get(0) + " (" + model.info().exportPath().description() + "), signature " + signature);
      ModelCheck.Report report;
      try {
        report = ModelCheck.run(model, signature, seed);
      } catch (IllegalArgumentException e) {
        out.println("No layer can be fine-tuned: " + e.getMessage());
        model.info().gradientGaps().forEach(g -> out.println("  " + String.join(", ", g.layers()) + ": behind "
            + g.op() + " (" + g.node() + "), which has no gradient"));
        return ExitCode.FAILED;
      }
      out.printf(Locale.ROOT, "Flattened graph vs original on random inputs: max|diff|/max|original| = %.3g%n",
          report.flatDifference());
      out.println("Layers that can be fine-tuned (" + report.trainableLayers().size() + "): "
          + String.join(", ", report.trainableLayers()));
      if (report.untrainableLayers().isEmpty()) {
        out.println("Layers that cannot: none");
      } else {
        out.println("Layers that cannot (" + report.untrainableLayers().size() + "):");
        report.untrainableLayers().forEach((layer, why) -> out.println("  " + layer + ": " + why));
      }
      report.warnings().forEach(w -> out.println("warning: " + w));
      String losses = report.losses().size() == 1 ? report.losses().values().iterator().next().kerasName()
          : String.join(" + ", report.losses().entrySet().stream().map(e -> e.getValue().kerasName() + " on "
              + e.getKey()).toList());
      out.printf(Locale.ROOT, "One SGD step (learning rate 0.01) with %s on random data: loss %.6g -> %.6g%n",
          losses, report.lossBefore(), report.lossAfter());
      if (report.flatDifference() > 1e-5) {
        err.println("finetune check: the flattened graph differs from the original by " + report.flatDifference());
        return ExitCode.FAILED;
      }
      return report.untrainableLayers().isEmpty() ? ExitCode.OK : ExitCode.PARTLY;
    }
  }
}
