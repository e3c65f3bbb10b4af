package org.finetune.cli;

import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import org.apache.commons.cli.CommandLine;
import org.apache.commons.cli.Option;
import org.apache.commons.cli.Options;
import org.finetune.model.KerasSavedModel;
import org.finetune.model.RuntimeOptions;
import org.finetune.savedmodel.SavedModelDirectory;

/** Flags shared by the commands that load a model into the runtime. */
final class ModelFlags {
  private ModelFlags() {}

  /** Lets a model with file, network or Python ops load ({@code org.finetune.savedmodel.UnsafeOps}). */
  static Option allowUnsafeOps() {
    return Option.builder().longOpt("allow-unsafe-ops")
        .desc("load a model even if it holds ops that read or write files, use the network or run Python"
            + " (only for models you trust: loading runs their init op)").build();
  }

  static boolean trusting(CommandLine line) {
    return line.hasOption("allow-unsafe-ops");
  }

  /** --device, --mixed-precision, --xla, --threads: how the runtime runs the model. */
  static List<Option> runtime() {
    return List.of(
        Option.builder().longOpt("device").hasArg().argName("auto|cpu|gpu|gpu:N")
            .desc("where the model runs (default auto: the GPU when the runtime sees one; the GPU runtime comes"
                + " with the Maven profile -Pgpu and needs CUDA 12 and cuDNN 9)").build(),
        Option.builder().longOpt("mixed-precision")
            .desc("Grappler's automatic mixed precision: float16 on a GPU, bfloat16 (oneDNN) on a CPU; variables"
                + " stay float32").build(),
        Option.builder().longOpt("xla").desc("compile the step with XLA's JIT (also on the CPU); the first step"
            + " pays the compilation").build(),
        Option.builder().longOpt("threads").hasArg().argName("N")
            .desc("threads each op may use (default: one per core)").build());
  }

  static void addRuntime(Options o) {
    runtime().forEach(o::addOption);
  }

  static RuntimeOptions runtime(CommandLine line) {
    RuntimeOptions r;
    try {
      r = RuntimeOptions.defaults().withDevice(line.getOptionValue("device", "auto"));
    } catch (IllegalArgumentException e) {
      throw new UsageException("--device: " + e.getMessage());
    }
    r = r.withMixedPrecision(line.hasOption("mixed-precision")).withXla(line.hasOption("xla"));
    if (line.hasOption("threads")) {
      int n;
      try {
        n = Integer.parseInt(line.getOptionValue("threads").trim());
      } catch (NumberFormatException e) {
        throw new UsageException("--threads must be a whole number, got '" + line.getOptionValue("threads") + "'");
      }
      if (n < 1) {
        throw new UsageException("--threads must be at least 1, got " + n);
      }
      r = new RuntimeOptions(r.device(), r.mixedPrecision(), r.xla(), java.util.OptionalInt.of(n),
          r.interOpThreads());
    }
    return r;
  }

  /** Opens the serve MetaGraph of {@code dir} as the command line asks (trust, device, rewrites). */
  static KerasSavedModel open(Path dir, CommandLine line) {
    return open(dir, SavedModelDirectory.SERVE, Optional.empty(), line);
  }

  static KerasSavedModel open(Path dir, Set<String> tags, Optional<String> signature, CommandLine line) {
    KerasSavedModel.Loader loader = KerasSavedModel.loader(dir).withTags(tags).allowingUnsafeOps(trusting(line))
        .withRuntime(runtime(line));
    return (signature.isPresent() ? loader.withSignature(signature.get()) : loader).load();
  }

  /** Says when a runtime flag will do nothing here (the runtime itself would not say). */
  static void warnIneffective(CommandLine line, java.io.PrintWriter err) {
    if (line.hasOption("mixed-precision") && !line.getOptionValue("device", "auto").startsWith("gpu")
        && !RuntimeOptions.cpuRunsBfloat16()) {
      err.println("warning: --mixed-precision does nothing on this CPU: the runtime's bfloat16 rewrite needs AVX512F"
          + " or AVX-NE-CONVERT, so training stays in float32");
      err.flush();
    }
  }
}
