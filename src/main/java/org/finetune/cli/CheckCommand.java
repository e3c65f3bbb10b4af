package org.finetune.cli;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import org.apache.commons.cli.CommandLine;
import org.apache.commons.cli.Option;
import org.apache.commons.cli.Options;
import org.finetune.data.NpyArray;
import org.finetune.model.KerasSavedModel;
import org.finetune.savedmodel.SignatureInfo;
import org.finetune.savedmodel.TensorSpec;
import org.finetune.train.ModelCheck;

/** {@code finetune check DIR}: can this model be fine-tuned here, and which layers? */
final class CheckCommand implements Command {
  @Override
  public String name() {
    return "check";
  }

  @Override
  public String synopsis() {
    return "DIR [--input NAME=FILE.npy ...] [--signature NAME] [--tag TAGS] [--seed N]";
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
        + "for token logits, else mean squared error) at a learning rate of 0.01 and prints the loss before\n"
        + "and after, then a verdict. When that step does not lower the loss and the gradients are finite,\n"
        + "steps a tenth as long are tried from the same weights, down to 1e-6, until one lowers it; the\n"
        + "rate it took is the one to start at.\n"
        + "Random integers stay below the rows of the tables they index; --input gives real examples instead\n"
        + "(int64 ids are cast to int32 as Keras casts them).\n"
        + "Exit codes: 0 every trainable layer can be fine-tuned and the step is finite, 3 only some layers\n"
        + "can, 1 none can, the gradients are not finite or every step down to 1e-6 made the loss NaN or\n"
        + "infinite, 2 bad input.";
  }

  @Override
  public Options options() {
    Options o = new Options();
    o.addOption(ModelFlags.allowUnsafeOps());
    o.addOption(Option.builder().longOpt("signature").hasArg().argName("NAME")
        .desc("signature to check (default: serving_default, or the only one)").build());
    o.addOption(Option.builder().longOpt("tag").hasArg().argName("TAGS").desc("MetaGraph tags (default: serve)").build());
    o.addOption(Option.builder().longOpt("input").hasArg().argName("[NAME=]FILE")
        .desc("an input array (.npy) to check on instead of random values; repeat per input").build());
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
      Map<String, NpyArray> given = line.hasOption("input")
          ? givenInputs(model.info().selectedSignature(), line.getOptionValues("input")) : Map.of();
      ModelCheck.Report report;
      try {
        report = ModelCheck.run(model, signature, seed, given);
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
      report.notes().forEach(out::println);
      report.warnings().forEach(w -> out.println("warning: " + w));
      String losses = report.losses().size() == 1 ? report.losses().values().iterator().next().kerasName()
          : String.join(" + ", report.losses().entrySet().stream().map(e -> e.getValue().kerasName() + " on "
              + e.getKey()).toList());
      String data = given.isEmpty() ? "random" : "the given";
      for (ModelCheck.Step step : report.steps()) {
        out.printf(Locale.ROOT, "One SGD step (learning rate %s) with %s on %s data: loss %.6g -> %.6g%n",
            rate(step.rate()), losses, data, report.lossBefore(), step.lossAfter());
      }
      return verdict(report, out, err);
    }
  }

  /** The verdict line, and the exit code it stands for. */
  private static int verdict(ModelCheck.Report report, PrintWriter out, PrintWriter err) {
    int layers = report.trainableLayers().size() + report.untrainableLayers().size();
    if (report.flatDifference() > 1e-5) {
      out.println("Verdict: cannot be fine-tuned here: the flattened graph computes something else");
      err.println("finetune check: the flattened graph differs from the original by " + report.flatDifference());
      return ExitCode.FAILED;
    }
    if (!Double.isFinite(report.lossBefore()) || !report.gradientsFinite() || !report.finiteStep()) {
      String why = !Double.isFinite(report.lossBefore()) ? "the loss is " + report.lossBefore() + " before any step"
          : !report.gradientsFinite() ? "its gradients are not all finite (a step made the loss "
              + report.lossAfter() + ")"
          : report.steps().size() == 1 ? "one step made the loss " + report.lossAfter()
          : "every step, down to a learning rate of " + rate(ModelCheck.LOWEST_RATE) + ", made the loss NaN or"
              + " infinite";
      out.println("Verdict: cannot be fine-tuned as it is: " + why
          + " (look for layers that divide by a statistic, such as BatchNormalization with zero variance)");
      return ExitCode.FAILED;
    }
    if (report.steps().size() > 1) {
      String first = "at a learning rate of " + rate(ModelCheck.RATE) + " one step took the loss from "
          + String.format(Locale.ROOT, "%.6g to %.6g", report.lossBefore(), report.lossAfter());
      out.println("warning: " + first + report.descent()
          .map(d -> "; the largest rate that lowered it is " + rate(d.rate()) + ": start there or lower")
          .orElse("; no step down to " + rate(ModelCheck.LOWEST_RATE) + " lowered it on these examples"));
    } else if (report.lossAfter() > report.lossBefore()) {
      out.printf(Locale.ROOT, "warning: the step raised the loss (x%.3g): a learning rate of %s overshoots on this"
          + " model and these examples; start lower%n", report.lossAfter() / report.lossBefore(),
          rate(ModelCheck.RATE));
    }
    if (report.untrainableLayers().isEmpty()) {
      out.println("Verdict: can be fine-tuned: gradients reach all " + layers + " layers with weights, and the step is"
          + " finite");
      return ExitCode.OK;
    }
    out.println("Verdict: partly: " + report.trainableLayers().size() + " of " + layers + " layers with weights can be"
        + " fine-tuned");
    return ExitCode.PARTLY;
  }

  private static String rate(double rate) {
    return new java.math.BigDecimal(rate).round(new java.math.MathContext(3)).stripTrailingZeros().toPlainString();
  }

  /** The {@code --input} arrays, each checked against the signature's rank and fixed dimensions. */
  private static Map<String, NpyArray> givenInputs(SignatureInfo sig, String[] specs) {
    Map<String, NpyArray> arrays = PredictCommand.readInputs(sig, specs);
    for (TensorSpec spec : sig.inputs()) {
      NpyArray a = arrays.get(spec.key());
      boolean fits = a == null || !spec.rankKnown() || a.shape().length == spec.shape().size() && a.shape().length > 0
          && spec.withFreeDimensions(java.util.Arrays.copyOfRange(a.shape(), 1, a.shape().length)).shape()
              .subList(1, spec.shape().size()).equals(shapeTail(a));
      if (!fits) {
        throw new UsageException("--input " + spec.key() + ": the array is " + java.util.Arrays.toString(a.shape())
            + " and the input takes " + spec.shapeText() + "; give examples of that shape");
      }
    }
    long rows = arrays.values().iterator().next().shape().length == 0 ? 0 : arrays.values().iterator().next().shape()[0];
    if (arrays.values().stream().anyMatch(a -> a.shape().length == 0 || a.shape()[0] != rows)) {
      throw new UsageException("--input: every array needs the same number of examples (first dimension)");
    }
    return arrays;
  }

  private static List<Long> shapeTail(NpyArray a) {
    List<Long> tail = new java.util.ArrayList<>();
    for (int i = 1; i < a.shape().length; i++) {
      tail.add(a.shape()[i]);
    }
    return tail;
  }
}
