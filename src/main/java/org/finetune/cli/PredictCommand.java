package org.finetune.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.LinkedHashMap;
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

/** {@code finetune predict MODEL --input NAME=FILE.npy}: runs a signature on arrays. */
final class PredictCommand implements Command {
  @Override
  public String name() {
    return "predict";
  }

  @Override
  public String synopsis() {
    return "MODEL --input [NAME=]FILE.npy ... [--signature NAME] [--out DIR] [--top K]";
  }

  @Override
  public String summary() {
    return "run a SavedModel signature on .npy inputs and show (or save) its outputs";
  }

  @Override
  public String details() {
    return "Each --input gives one signature input as a NumPy .npy file (float32/64, int32/64, uint8, bool);\n"
        + "NAME= may be left out when the signature has one input. Rank-2 outputs are shown as the top K\n"
        + "classes per row; others as shape and value range. --out DIR writes <output>.npy files there.\n"
        + "Exit codes: 0 ok, 1 failed, 2 bad input.";
  }

  @Override
  public Options options() {
    Options o = new Options();
    o.addOption(Option.builder().longOpt("input").hasArg().argName("[NAME=]FILE").desc("an input array (.npy); repeat per input").build());
    o.addOption(Option.builder().longOpt("signature").hasArg().argName("NAME").desc("signature to run (default: serving_default)").build());
    o.addOption(Option.builder().longOpt("tag").hasArg().argName("TAGS").desc("MetaGraph tags, comma-separated (default: serve)").build());
    o.addOption(Option.builder().longOpt("out").hasArg().argName("DIR").desc("write each output as DIR/<name>.npy").build());
    o.addOption(Option.builder().longOpt("top").hasArg().argName("K").desc("classes shown per row of a 2-D output (default: 3)").build());
    return o;
  }

  @Override
  public int run(CommandLine line, PrintWriter out, PrintWriter err) {
    List<String> args = line.getArgList();
    if (args.size() != 1) {
      throw new UsageException("give one SavedModel directory: finetune predict MODEL --input FILE.npy");
    }
    String[] inputSpecs = line.getOptionValues("input");
    if (inputSpecs == null) {
      throw new UsageException("give the inputs: --input [NAME=]FILE.npy (once per signature input)");
    }
    int top = parseTop(line.getOptionValue("top", "3"));
    try (KerasSavedModel model = KerasSavedModel.open(Path.of(args.get(0)), InspectCommand.parseTags(line.getOptionValue("tag")),
        Optional.ofNullable(line.getOptionValue("signature")))) {
      SignatureInfo sig = model.info().selectedSignature();
      Map<String, NpyArray> arrays = readInputs(sig, inputSpecs);
      Map<String, NpyArray> results = Predictions.run(model, sig.name(), arrays);
      for (Map.Entry<String, NpyArray> e : results.entrySet()) {
        Predictions.describe(e.getKey(), e.getValue(), top, out);
      }
      if (line.hasOption("out")) {
        writeOutputs(Path.of(line.getOptionValue("out")), results, out);
      }
    }
    return ExitCode.OK;
  }

  private static Map<String, NpyArray> readInputs(SignatureInfo sig, String[] specs) {
    Map<String, NpyArray> arrays = new LinkedHashMap<>();
    for (String spec : specs) {
      int eq = spec.indexOf('=');
      String name;
      String file;
      if (eq > 0) {
        name = spec.substring(0, eq);
        file = spec.substring(eq + 1);
      } else if (sig.inputs().size() == 1) {
        name = sig.inputs().get(0).key();
        file = spec;
      } else {
        throw new UsageException("signature '" + sig.name() + "' has " + sig.inputs().size() + " inputs ("
            + String.join(", ", sig.inputs().stream().map(TensorSpec::key).toList()) + "): write --input NAME=FILE.npy");
      }
      if (sig.inputs().stream().noneMatch(t -> t.key().equals(name))) {
        throw new UsageException("--input " + spec + ": signature '" + sig.name() + "' has no input '" + name
            + "'; its inputs are " + String.join(", ", sig.inputs().stream().map(TensorSpec::key).toList()));
      }
      try {
        arrays.put(name, NpyArray.read(Path.of(file)));
      } catch (IOException | RuntimeException e) {
        throw new UsageException("--input " + spec + ": cannot read " + file + " as a .npy array: " + e.getMessage());
      }
    }
    return arrays;
  }

  private static int parseTop(String value) {
    try {
      int k = Integer.parseInt(value);
      if (k >= 1) {
        return k;
      }
    } catch (NumberFormatException e) {
      // fall through to the message below
    }
    throw new UsageException("--top must be a whole number of at least 1, got '" + value + "'");
  }

  private static void writeOutputs(Path dir, Map<String, NpyArray> results, PrintWriter out) {
    try {
      Files.createDirectories(dir);
      for (Map.Entry<String, NpyArray> e : results.entrySet()) {
        Path target = dir.resolve(e.getKey() + ".npy");
        Path tmp = Files.createTempFile(dir, "." + e.getKey(), ".npy.tmp");
        e.getValue().write(tmp);
        Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        out.println("wrote " + target);
      }
    } catch (IOException e) {
      throw new UsageException("--out " + dir + ": cannot write there: " + e.getMessage());
    }
  }

  static String fmt(double v) {
    return String.format(Locale.ROOT, "%.6g", v);
  }
}
