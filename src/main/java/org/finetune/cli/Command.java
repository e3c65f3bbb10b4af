package org.finetune.cli;

import java.io.PrintWriter;
import org.apache.commons.cli.Options;

/** One sub-command: its flags and what it does with them. */
interface Command {
  /** The word that selects it, e.g. {@code inspect}. */
  String name();

  /** The usage line after the command name, e.g. {@code DIR [--json]}. */
  String synopsis();

  /** One line for the command list. */
  String summary();

  /** Longer help printed below the flags. */
  String details();

  Options options();

  /** Runs with parsed flags; returns an exit code. Library exceptions propagate to {@link Cli}. */
  int run(org.apache.commons.cli.CommandLine line, PrintWriter out, PrintWriter err);
}
