package org.finetune.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.function.Supplier;
import org.apache.commons.cli.CommandLine;
import org.apache.commons.cli.Option;
import org.finetune.hint.Hinted;
import org.finetune.hint.Setting;

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
      throw new UsageException(Flags.message(e));
    }
  }

  /** A library error's problem, with its fix said in flags where the fix is about one. */
  static String describe(Hinted e) {
    boolean libraryFix = !e.fix().isEmpty();
    String fix = switch (e.setting()) {
      case HEAD -> "add --head to train a new classifier with one output per class folder";
      case FEATURES -> "name it with --features-at LAYER";
      case IMAGE_SIZE -> "give one with --image-size HxW";
      case EXPORT -> "choose another or add --overwrite";
      case GROUPS -> "give --groups G1,G2,... (top first)";
      case LAYERS -> "name one of them in --train, --groups or --unfreeze";
      case ADAPTERS -> "name the kernels with --lora-targets GLOB,... (globs over variable names)";
      case SEQUENCE_LENGTH -> libraryFix ? "lower --seq-len" : "";
      case VALIDATION -> libraryFix ? "give --val-data or --val-split, not both" : "";
      case AUGMENTATION -> libraryFix ? "leave out --flip, --zoom and --brightness" : "";
      case UNSAFE_OPS -> "if you trust this model, pass --allow-unsafe-ops";
      case SIGNATURE -> "choose one with --signature";
      case TAGS -> "choose one with --tag (comma-separated)";
      case DEVICE -> "without a GPU, use --device cpu";
      case NON_FINITE -> "--on-non-finite skip skips such batches instead";
      case STRICT_DATA -> "replace or remove it (without --strict an unreadable image is skipped with a warning)";
      case FROM_LOGITS -> "leave out --from-logits: the loss would apply it again";
      case PREPROCESS -> "give --preprocess tf or none";
      case LOSS -> "give --loss" + (e.fix().startsWith("name the loss") ? e.fix().substring("name the loss".length())
          : " NAME");
      default -> e.fix();
    };
    // The runtime words a device problem as "device D: ...", which the flag's name completes.
    String problem = e.setting() == Setting.DEVICE && e.problem().startsWith("device ") ? "--" + e.problem()
        : e.problem();
    return Hinted.message(problem, fix);
  }

  /** The message of an error from the library, its fix said in flags where it carries a hint. */
  static String message(RuntimeException e) {
    return e instanceof Hinted h ? describe(h) : e.getMessage();
  }
}
