package org.finetune.cli;

import org.apache.commons.cli.CommandLine;
import org.apache.commons.cli.Option;

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
}
