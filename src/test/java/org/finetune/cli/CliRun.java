package org.finetune.cli;

import java.io.PrintWriter;
import java.io.StringWriter;

/** One in-process run of the command line, with what it printed. */
record CliRun(int exit, String out, String err) {
  static CliRun of(String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int exit = new Cli().run(args, new PrintWriter(out), new PrintWriter(err));
    return new CliRun(exit, out.toString(), err.toString());
  }

  /** stderr without its final newline. */
  String errLine() {
    return err.strip();
  }
}
