package org.finetune.cli;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.commons.cli.CommandLine;
import org.apache.commons.cli.DefaultParser;
import org.apache.commons.cli.HelpFormatter;
import org.apache.commons.cli.Option;
import org.apache.commons.cli.Options;
import org.apache.commons.cli.ParseException;
import org.finetune.data.InvalidDataException;
import org.finetune.hint.BadSettingException;
import org.finetune.savedmodel.InvalidModelException;

/**
 * The {@code finetune} command line: picks the sub-command, parses its flags, runs it and maps
 * what went wrong to an exit code and one line on stderr (the stack trace only with
 * {@code --verbose}). Never calls {@code System.exit}; {@link Main} does.
 */
public final class Cli {
  private final Map<String, Command> commands = new LinkedHashMap<>();

  public Cli() {
    for (Command c : List.of(new InspectCommand(), new CheckCommand(), new PredictCommand(), new TrainCommand(), new EvaluateCommand(), new ExportCommand(), new GenerateCommand(), new BatchCommand(), new DemoCommand())) {
      commands.put(c.name(), c);
    }
  }

  /** Runs {@code args}, writing to {@code out} and {@code err}; returns the exit code. */
  public int run(String[] args, PrintWriter out, PrintWriter err) {
    try {
      return dispatch(args, out, err);
    } finally {
      out.flush();
      err.flush();
    }
  }

  private int dispatch(String[] args, PrintWriter out, PrintWriter err) {
    if (args.length == 0 || args[0].equals("--help") || args[0].equals("-h") || args[0].equals("help")) {
      printCommands(args.length == 0 ? err : out);
      return args.length == 0 ? ExitCode.BAD_INPUT : ExitCode.OK;
    }
    if (args[0].equals("--version")) {
      out.println("finetune " + version() + " (TensorFlow " + org.tensorflow.TensorFlow.version() + ")");
      return ExitCode.OK;
    }
    Command command = commands.get(args[0]);
    if (command == null) {
      err.println("finetune: unknown command '" + args[0] + "'; the commands are " + String.join(", ", commands.keySet())
          + ". Run finetune --help.");
      return ExitCode.BAD_INPUT;
    }
    String[] rest = Arrays.copyOfRange(args, 1, args.length);
    Options options = command.options();
    options.addOption(Option.builder("h").longOpt("help").desc("show this help and exit").build());
    options.addOption(Option.builder().longOpt("verbose").desc("on errors, print the stack trace too").build());
    boolean verbose = Arrays.asList(rest).contains("--verbose");
    CommandLine line;
    try {
      line = new DefaultParser().parse(options, rest);
    } catch (ParseException e) {
      err.println("finetune " + command.name() + ": " + e.getMessage() + ". Run finetune " + command.name()
          + " --help.");
      return ExitCode.BAD_INPUT;
    }
    if (line.hasOption("help")) {
      printHelp(command, options, out);
      return ExitCode.OK;
    }
    try {
      return command.run(line, out, err);
    } catch (UsageException e) {
      err.println("finetune " + command.name() + ": " + e.getMessage());
      return ExitCode.BAD_INPUT;
    } catch (org.finetune.train.Fit.NonFiniteLossException e) {
      err.println("finetune " + command.name() + ": " + Flags.describe(e));
      trace(e, verbose, err);
      return ExitCode.FAILED;
    } catch (BadSettingException | InvalidModelException | InvalidDataException e) {
      err.println("finetune " + command.name() + ": " + Flags.describe(e));
      trace(e, verbose, err);
      return ExitCode.BAD_INPUT;
    } catch (RuntimeException e) {
      err.println("finetune " + command.name() + ": failed: " + e + (verbose ? "" : " (run with --verbose for details)"));
      trace(e, verbose, err);
      return ExitCode.FAILED;
    }
  }

  private static void trace(Throwable e, boolean verbose, PrintWriter err) {
    if (verbose) {
      StringWriter s = new StringWriter();
      e.printStackTrace(new PrintWriter(s));
      err.print(s);
    }
  }

  private void printCommands(PrintWriter w) {
    w.println("finetune " + version() + ": fine-tune Keras SavedModels on the JVM and export them back.");
    w.println();
    w.println("Usage: finetune COMMAND [FLAGS]   (finetune COMMAND --help for its flags)");
    w.println();
    w.println("Commands:");
    commands.values().forEach(c -> w.printf("  %-10s %s%n", c.name(), c.summary()));
    w.println();
    w.println("Exit codes: 0 ok, 1 failed, 2 bad input, 3 partly done.");
  }

  private static void printHelp(Command command, Options options, PrintWriter out) {
    HelpFormatter help = HelpFormatter.builder().get();
    help.setWidth(100);
    help.printHelp(out, 100, "finetune " + command.name() + " " + command.synopsis(), command.summary(),
        options, 2, 2, "\n" + command.details() + "\n", false);
  }

  static String version() {
    String v = Cli.class.getPackage().getImplementationVersion();
    return v == null ? "dev" : v;
  }
}
