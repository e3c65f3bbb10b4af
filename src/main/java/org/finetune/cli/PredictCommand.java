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
    return "MODEL (--input [NAME=]FILE.npy ... | --images FILE_OR_DIR ... | --clips DIR ...) [--top K]"
        + " [--format table|json|csv]";
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
        + "--images classifies image files (folders are searched): decoded, resized and preprocessed as for\n"
        + "training, then the top K classes per image, named as the training folders were when the model\n"
        + "is a finetune export; --format json or csv for machines.\n"
        + "--clips classifies video clips with a video model (input [batch, frames, height, width, 3]): each\n"
        + "folder that holds frames (.png, .jpg, ...) is one clip, found under the folders given; the\n"
        + "model's number of frames is taken evenly from each, in name order.\n"
        + "Exit codes: 0 ok, 1 failed, 2 bad input.";
  }

  @Override
  public Options options() {
    Options o = new Options();
    o.addOption(ModelFlags.allowUnsafeOps());
    ModelFlags.addRuntime(o);
    o.addOption(Option.builder().longOpt("input").hasArg().argName("[NAME=]FILE").desc("an input array (.npy); repeat per input").build());
    o.addOption(Option.builder().longOpt("signature").hasArg().argName("NAME").desc("signature to run (default: serving_default)").build());
    o.addOption(Option.builder().longOpt("tag").hasArg().argName("TAGS").desc("MetaGraph tags, comma-separated (default: serve)").build());
    o.addOption(Option.builder().longOpt("out").hasArg().argName("DIR").desc("write each output as DIR/<name>.npy").build());
    o.addOption(Option.builder().longOpt("images").hasArg().argName("FILE_OR_DIR")
        .desc("image files or folders to classify; repeatable").build());
    o.addOption(Option.builder().longOpt("clips").hasArg().argName("DIR")
        .desc("clip folders (of frames) or folders of them, for a video model; repeatable").build());
    o.addOption(Option.builder().longOpt("format").hasArg().argName("FORMAT")
        .desc("for --images: table (default), json or csv").build());
    o.addOption(Option.builder().longOpt("preprocess").hasArg().argName("MODE")
        .desc("for --images: caffe, tf, torch or none (default: from the model)").build());
    o.addOption(Option.builder().longOpt("top").hasArg().argName("K").desc("classes shown per row of a 2-D output (default: 3)").build());
    return o;
  }

  @Override
  public int run(CommandLine line, PrintWriter out, PrintWriter err) {
    List<String> args = line.getArgList();
    if (args.size() != 1) {
      throw new UsageException("give one SavedModel directory: finetune predict MODEL --input FILE.npy");
    }
    if (line.hasOption("images") && line.hasOption("clips")) {
      throw new UsageException("give --images or --clips, not both");
    }
    if (line.hasOption("images") || line.hasOption("clips")) {
      return images(line, Path.of(args.get(0)), out, err);
    }
    String[] inputSpecs = line.getOptionValues("input");
    if (inputSpecs == null) {
      throw new UsageException("give the inputs: --input [NAME=]FILE.npy (once per signature input)");
    }
    int top = parseTop(line.getOptionValue("top", "3"));
    try (KerasSavedModel model = ModelFlags.open(Path.of(args.get(0)), InspectCommand.parseTags(line.getOptionValue("tag")),
        Optional.ofNullable(line.getOptionValue("signature")), line)) {
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

  private static int images(CommandLine line, Path modelDir, PrintWriter out, PrintWriter err) {
    int top = parseTop(line.getOptionValue("top", "3"));
    String format = line.getOptionValue("format", "table");
    if (!List.of("table", "json", "csv").contains(format)) {
      throw new UsageException("--format must be table, json or csv, got '" + format + "'");
    }
    boolean clips = line.hasOption("clips");
    List<org.finetune.data.ImageFolder.Item> items = clips ? List.of()
        : ImageClassifier.items(List.of(line.getOptionValues("images")));
    try (KerasSavedModel model = ModelFlags.open(modelDir, line)) {
      org.finetune.job.ImageInput image = org.finetune.job.ImageInput.of(model, Optional.empty());
      if (clips != (image.frames() > 0)) {
        throw new UsageException(modelDir + (clips ? " takes images, not clips: use --images"
            : " takes clips of " + image.frames() + " frames: use --clips"));
      }
      if (clips) {
        items = ImageClassifier.clipItems(List.of(line.getOptionValues("clips")), image.frames());
      }
      org.finetune.data.ImageOps.Preprocess preprocess = EvaluateCommand.preprocess(line, model);
      List<String> names = ImageClassifier.recordedClasses(modelDir);
      List<ImageClassifier.Prediction> predictions;
      var options = EvaluateCommand.options(image, preprocess, 32);
      try (org.finetune.data.ImageDataset data = clips ? org.finetune.data.ImageDataset.clips(items, image.frames(),
          options) : org.finetune.data.ImageDataset.open(items, options)) {
        predictions = ImageClassifier.run(model, image, data);
        if (predictions.isEmpty()) {
          throw new UsageException("no readable image among the " + items.size() + " file(s) given by --images "
              + String.join(", ", line.getOptionValues("images")) + " (unreadable: " + String.join(", ",
              data.skipped().stream().map(Path::toString).sorted().toList()) + "); give JPEG, PNG, GIF, BMP or TIFF"
              + " files");
        }
        if (!data.skipped().isEmpty()) {
          err.println("warning: skipped " + data.skipped().size() + " unreadable image(s): "
              + String.join(", ", data.skipped().stream().map(Path::toString).sorted().toList()));
        }
      }
      com.google.gson.JsonArray json = new com.google.gson.JsonArray();
      if (format.equals("csv")) {
        out.println("file,rank,class,score");
      }
      for (ImageClassifier.Prediction p : predictions) {
        Integer[] order = new Integer[p.scores().length];
        for (int i = 0; i < order.length; i++) {
          order[i] = i;
        }
        java.util.Arrays.sort(order, (a, b) -> Float.compare(p.scores()[b], p.scores()[a]));
        com.google.gson.JsonArray topK = new com.google.gson.JsonArray();
        StringBuilder row = new StringBuilder(p.file().toString());
        for (int r = 0; r < Math.min(top, order.length); r++) {
          int c = order[r];
          String name = c < names.size() ? names.get(c) : Integer.toString(c);
          if (format.equals("csv")) {
            out.printf(Locale.ROOT, "%s,%d,%s,%.6g%n", p.file(), r + 1, name, p.scores()[c]);
          }
          row.append(String.format(Locale.ROOT, "  %s %.4f", name, p.scores()[c]));
          com.google.gson.JsonObject o = new com.google.gson.JsonObject();
          o.addProperty("class", name);
          o.addProperty("index", c);
          o.addProperty("score", p.scores()[c]);
          topK.add(o);
        }
        if (format.equals("table")) {
          out.println(row);
        }
        com.google.gson.JsonObject o = new com.google.gson.JsonObject();
        o.addProperty("file", p.file().toString());
        o.add("top", topK);
        json.add(o);
      }
      if (format.equals("json")) {
        out.println(new com.google.gson.GsonBuilder().setPrettyPrinting().create().toJson(json));
      }
    }
    return ExitCode.OK;
  }

  static Map<String, NpyArray> readInputs(SignatureInfo sig, String[] specs) {
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
      if (Files.isDirectory(Path.of(file))) {
        throw new UsageException("--input " + spec + ": " + file + " is a folder; give a .npy file (numpy.save writes"
            + " one)");
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
