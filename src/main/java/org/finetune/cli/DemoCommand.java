package org.finetune.cli;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.commons.cli.CommandLine;
import org.apache.commons.cli.Option;
import org.apache.commons.cli.Options;
import org.finetune.data.NpyArray;
import org.finetune.model.KerasSavedModel;

/**
 * {@code finetune demo}: the main job on the bundled default. For now: inspect the bundled small
 * VGG16 and run it on the input Keras stored beside it, comparing with Keras's own output. The
 * fine-tuning demo replaces this when training lands.
 */
final class DemoCommand implements Command {
  static final String DEFAULT_FIXTURE = "savedmodels/vgg16_small/keras3_export";

  @Override
  public String name() {
    return "demo";
  }

  @Override
  public String synopsis() {
    return "[--fixture DIR]";
  }

  @Override
  public String summary() {
    return "inspect the bundled small VGG16 and check a prediction against Keras's (no Python needed)";
  }

  @Override
  public String details() {
    return "A fixture directory holds model/ (a SavedModel), expected.json and sample/*.npy, as\n"
        + "scripts/export_keras_models.py writes them. Default: " + DEFAULT_FIXTURE + " under the\n"
        + "finetune checkout (the launcher passes its location).";
  }

  @Override
  public Options options() {
    Options o = new Options();
    o.addOption(Option.builder().longOpt("fixture").hasArg().argName("DIR")
        .desc("fixture directory (default: the bundled small VGG16)").build());
    return o;
  }

  @Override
  public int run(CommandLine line, PrintWriter out, PrintWriter err) {
    Path fixture = line.hasOption("fixture") ? Path.of(line.getOptionValue("fixture"))
        : Path.of(System.getProperty("finetune.home", ".")).resolve(DEFAULT_FIXTURE);
    Path expectedFile = fixture.resolve("expected.json");
    if (!Files.isRegularFile(expectedFile)) {
      throw new UsageException(fixture + " is not a fixture directory (no expected.json); give --fixture DIR,"
          + " or run the demo from a finetune checkout");
    }
    JsonObject expected;
    try {
      expected = JsonParser.parseString(Files.readString(expectedFile)).getAsJsonObject();
    } catch (IOException | RuntimeException e) {
      throw new UsageException("cannot read " + expectedFile + ": " + e.getMessage());
    }
    out.println("== 1. What is in the model (finetune inspect " + fixture.resolve("model") + ")");
    out.println();
    try (KerasSavedModel model = KerasSavedModel.open(fixture.resolve("model"))) {
      InspectReport.table(model.info(), out);
      out.println();
      JsonObject sample = expected.getAsJsonObject("sample");
      out.println("== 2. A prediction through '" + sample.get("signature").getAsString()
          + "', checked against Keras's output for the same input");
      out.println();
      Map<String, NpyArray> inputs = new LinkedHashMap<>();
      for (String key : sample.getAsJsonObject("inputs").keySet()) {
        inputs.put(key, read(fixture.resolve(sample.getAsJsonObject("inputs").get(key).getAsString())));
      }
      long start = System.nanoTime();
      Map<String, NpyArray> outputs = Predictions.run(model, sample.get("signature").getAsString(), inputs);
      double ms = (System.nanoTime() - start) / 1e6;
      double worst = 0;
      for (Map.Entry<String, NpyArray> e : outputs.entrySet()) {
        Predictions.describe(e.getKey(), e.getValue(), 3, out);
        NpyArray keras = read(fixture.resolve(sample.getAsJsonObject("outputs").get(e.getKey()).getAsString()));
        worst = Math.max(worst, NpyArray.relativeDifference(keras.toDoubles(), e.getValue().toDoubles()));
      }
      out.printf("%nJava vs Keras (%s %s): max|diff|/max|keras| = %.3g over %d output(s), in %.1f ms%n",
          expected.getAsJsonObject("versions").get("keras").getAsString(),
          expected.get("export_path").getAsString(), worst, outputs.size(), ms);
      if (worst > 1e-5) {
        err.println("finetune demo: Java's output differs from Keras's by " + worst + " (more than 1e-5)");
        return ExitCode.FAILED;
      }
    }
    return ExitCode.OK;
  }

  private static NpyArray read(Path file) {
    try {
      return NpyArray.read(file);
    } catch (IOException e) {
      throw new UsageException("cannot read " + file + ": " + e.getMessage());
    }
  }
}
