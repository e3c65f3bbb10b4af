package org.finetune.cli;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import org.apache.commons.cli.CommandLine;
import org.apache.commons.cli.Option;
import org.apache.commons.cli.Options;
import org.finetune.job.ModelFamily;
import org.finetune.model.FlatSignature;
import org.finetune.savedmodel.ModelInfo;
import org.finetune.savedmodel.SavedModelDirectory;
import org.finetune.savedmodel.SavedModelInspector;

/** {@code finetune inspect DIR}: what is in a SavedModel, what can be frozen, what cannot be trained. */
final class InspectCommand implements Command {
  @Override
  public String name() {
    return "inspect";
  }

  @Override
  public String synopsis() {
    return "DIR [--signature NAME] [--tag TAGS] [--json]";
  }

  @Override
  public String summary() {
    return "show a SavedModel's layers, parameters, signatures, ops and what cannot be trained";
  }

  @Override
  public String details() {
    return "Reads DIR as data: the model is not loaded into the runtime and none of its ops run.\n"
        + "Layers are listed in forward order with their variables; 'Cannot be trained' names the layers\n"
        + "whose trainable variables sit behind an op that has no gradient in the TensorFlow runtime.\n"
        + "Exit codes: 0 ok, 2 bad input (the message names the file or flag and the fix).";
  }

  @Override
  public Options options() {
    Options o = new Options();
    o.addOption(Option.builder().longOpt("signature").hasArg().argName("NAME")
        .desc("signature to analyse (default: serving_default, or the only one)").build());
    o.addOption(Option.builder().longOpt("tag").hasArg().argName("TAGS")
        .desc("MetaGraph tags, comma-separated (default: serve)").build());
    o.addOption(Option.builder().longOpt("json").desc("print JSON instead of tables").build());
    return o;
  }

  @Override
  public int run(CommandLine line, PrintWriter out, PrintWriter err) {
    List<String> args = line.getArgList();
    if (args.size() != 1) {
      throw new UsageException(args.isEmpty() ? "give the SavedModel directory: finetune inspect DIR"
          : "expected one directory, got " + args.size() + ": " + String.join(" ", args));
    }
    Set<String> tags = parseTags(line.getOptionValue("tag"));
    SavedModelDirectory dir = SavedModelDirectory.open(Path.of(args.get(0)), tags);
    ModelInfo info = SavedModelInspector.inspect(dir, Optional.ofNullable(line.getOptionValue("signature")));
    org.finetune.savedmodel.UnsafeOps.Report audit = org.finetune.savedmodel.UnsafeOps.audit(dir.metaGraph());
    // Read from the graph, not loaded: inspect runs nothing of the model.
    Optional<ModelFamily> family;
    String familyLine;
    try {
      family = Optional.of(ModelFamily.detect(info, () -> FlatSignature.unloaded(dir.metaGraph(), info)));
      familyLine = InspectReport.family(family.get());
    } catch (RuntimeException e) {
      family = Optional.empty();
      familyLine = "Family: not determined (the signature cannot be flattened: " + e.getMessage() + ")";
    }
    if (line.hasOption("json")) {
      com.google.gson.JsonObject json = com.google.gson.JsonParser.parseString(InspectReport.json(info))
          .getAsJsonObject();
      com.google.gson.JsonArray unsafe = new com.google.gson.JsonArray();
      audit.findings().forEach(f -> {
        com.google.gson.JsonObject o = new com.google.gson.JsonObject();
        o.addProperty("op", f.op());
        o.addProperty("kind", f.kind().name().toLowerCase(java.util.Locale.ROOT));
        o.addProperty("function", f.function());
        o.addProperty("node", f.node());
        unsafe.add(o);
      });
      json.add("unsafe_ops", unsafe);
      com.google.gson.JsonArray assets = new com.google.gson.JsonArray();
      audit.escapingAssets().forEach(assets::add);
      json.add("escaping_assets", assets);
      family.ifPresent(f -> json.add("family", InspectReport.familyJson(f)));
      out.println(new com.google.gson.GsonBuilder().setPrettyPrinting().disableHtmlEscaping().create().toJson(json));
    } else {
      InspectReport.table(info, out);
      out.println();
      out.println(familyLine);
      out.println(audit.clean() ? "Unsafe ops: none (no file, network or Python ops outside the saver)"
          : "Unsafe ops (loading is refused unless --allow-unsafe-ops): " + audit.summary());
    }
    return ExitCode.OK;
  }

  static Set<String> parseTags(String value) {
    if (value == null) {
      return SavedModelDirectory.SERVE;
    }
    Set<String> tags = new LinkedHashSet<>();
    Arrays.stream(value.split(",")).map(String::trim).filter(s -> !s.isEmpty()).forEach(tags::add);
    if (tags.isEmpty()) {
      throw new UsageException("--tag needs at least one tag, e.g. --tag serve");
    }
    return tags;
  }
}
