package org.finetune.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.function.Supplier;
import org.apache.commons.cli.CommandLine;
import org.apache.commons.cli.Option;
import org.finetune.job.JobException;

/** Reading flag values, and saying a library's bad-input errors in terms of flags. */
final class Flags {
  private Flags() {}

  /** A flag with one value. */
  static Option opt(String name, String arg, String desc) {
    return Option.builder().longOpt(name).hasArg().argName(arg).desc(desc).build();
  }

  static long longValue(CommandLine line, String name, long fallback) {
    String v = line.getOptionValue(name);
    if (v == null) {
      return fallback;
    }
    try {
      return Long.parseLong(v.trim());
    } catch (NumberFormatException e) {
      throw new UsageException("--" + name + " must be a whole number, got '" + v + "'");
    }
  }

  static double doubleValue(CommandLine line, String name, double fallback) {
    String v = line.getOptionValue(name);
    if (v == null) {
      return fallback;
    }
    try {
      return Double.parseDouble(v.trim());
    } catch (NumberFormatException e) {
      throw new UsageException("--" + name + " must be a number, got '" + v + "'");
    }
  }

  /** Paths from a comma-separated flag value. */
  static List<Path> paths(String value) {
    List<Path> out = new ArrayList<>();
    for (String p : value.split(",")) {
      if (!p.isBlank()) {
        out.add(Path.of(p.trim()));
      }
    }
    return out;
  }

  /** --image-size HxW. */
  static Optional<int[]> imageSize(String text) {
    if (text == null) {
      return Optional.empty();
    }
    String[] p = text.toLowerCase(java.util.Locale.ROOT).split("x");
    try {
      if (p.length == 2) {
        int h = Integer.parseInt(p[0].trim());
        int w = Integer.parseInt(p[1].trim());
        if (h > 0 && w > 0) {
          return Optional.of(new int[] {h, w});
        }
      }
    } catch (NumberFormatException e) {
      // falls through
    }
    throw new UsageException("--image-size takes HEIGHTxWIDTH, e.g. 224x224; got '" + text + "'");
  }

  /** What {@code s} makes, an invalid value turned into a usage error. */
  static <T> T parse(Supplier<T> s) {
    try {
      return s.get();
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage());
    }
  }

  /** A job's bad-input error with the fix said in flags where one is about a flag. */
  static String describe(JobException e) {
    String fix = switch (e.setting()) {
      case HEAD -> "add --head to train a new classifier with one output per class folder";
      case IMAGE_SIZE -> "give one with --image-size HxW";
      case EXPORT -> "choose another or add --overwrite";
      case GROUPS -> "give --groups G1,G2,... (top first)";
      case SEQUENCE_LENGTH -> "lower --seq-len";
      case VALIDATION -> "give --val-data or --val-split, not both";
      case AUGMENTATION -> "leave out --flip, --zoom and --brightness";
      default -> e.fix();
    };
    return e.fix().isEmpty() && !fixedByFlag(e.setting()) ? e.problem() : e.problem() + "; " + fix;
  }

  private static boolean fixedByFlag(JobException.Setting s) {
    return s == JobException.Setting.HEAD || s == JobException.Setting.IMAGE_SIZE || s == JobException.Setting.EXPORT
        || s == JobException.Setting.GROUPS;
  }
}
