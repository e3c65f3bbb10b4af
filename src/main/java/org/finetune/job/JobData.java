package org.finetune.job;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import org.finetune.hint.Setting;

/**
 * What a job trains on; the kind of data decides the task: labelled images (image
 * classification), labelled clips of frames (video classification), text (a causal language
 * model), or arrays of inputs and targets (any model, as Keras's {@code fit(x, y)}).
 */
public sealed interface JobData {
  /** A folder with one sub-folder of images per class. */
  record Images(Path root) implements JobData {
    public Images {
      Objects.requireNonNull(root, "root");
    }
  }

  /**
   * A folder with one sub-folder per class, each holding one folder of frames per clip (frames in
   * name order); {@code frames} of them are taken evenly from every clip.
   */
  record Clips(Path root, int frames) implements JobData {
    public Clips {
      Objects.requireNonNull(root, "root");
      if (frames < 2) {
        throw new JobException("a clip needs at least 2 frames to show motion, got " + frames, Setting.DATA,
            "take 2 or more frames per clip");
      }
    }
  }

  /**
   * Text files and folders of {@code *.txt} to train on, and optionally others to validate on
   * (empty: a share of the training documents is held out).
   */
  record Text(List<Path> train, List<Path> validation) implements JobData {
    public Text {
      train = List.copyOf(train);
      validation = List.copyOf(validation);
      if (train.isEmpty()) {
        throw new JobException("no text to train on", Setting.DATA, "give text files or folders");
      }
    }
  }

  /**
   * Examples as arrays, as Keras's {@code fit(x, y)} takes them: {@code inputs} is a {@code .npz}
   * holding one array per signature input (named as the input), a folder of {@code INPUT.npy}
   * files, a {@code .npy} for a model with one input, or a CSV table whose columns, the targets'
   * excepted, become the one input's features; {@code targets} are a {@code .npy} file or arrays
   * (columns) of the inputs. A {@code .npy} larger than memory should hold is mapped, not read.
   *
   * @param validation examples to validate on, read the same way (empty: none, or a share of these)
   */
  record Arrays(Path inputs, Targets targets, Optional<Arrays> validation) implements JobData {
    public Arrays {
      Objects.requireNonNull(inputs, "inputs");
      Objects.requireNonNull(targets, "targets");
      Objects.requireNonNull(validation, "validation");
      if (validation.isPresent() && validation.get().validation().isPresent()) {
        throw new IllegalArgumentException("validation examples have no validation of their own");
      }
    }

    /** The same examples, validated on {@code other}. */
    public Arrays validatedOn(Arrays other) {
      return new Arrays(inputs, targets, Optional.of(other));
    }
  }

  /**
   * Where an array task's targets are: a {@code .npy} file, arrays of the inputs' file (for a CSV
   * table, columns: several become one {@code [examples, columns]} target), or for a model trained
   * on several outputs, one of these per output key.
   */
  record Targets(Optional<Path> file, List<String> names, Map<String, Targets> byOutput) {
    public Targets {
      Objects.requireNonNull(file, "file");
      names = List.copyOf(names);
      byOutput = java.util.Collections.unmodifiableMap(new java.util.LinkedHashMap<>(byOutput));
      int forms = (file.isPresent() ? 1 : 0) + (names.isEmpty() ? 0 : 1) + (byOutput.isEmpty() ? 0 : 1);
      if (forms != 1) {
        throw new IllegalArgumentException("targets are a file, names of arrays in the inputs' file, or targets by"
            + " output: one of them");
      }
      for (Targets t : byOutput.values()) {
        if (!t.byOutput().isEmpty()) {
          throw new IllegalArgumentException("an output's targets are a file or arrays of the inputs' file");
        }
      }
    }

    /** Targets in a {@code .npy} file. */
    public static Targets file(Path npy) {
      return new Targets(Optional.of(npy), List.of(), Map.of());
    }

    /** Targets as arrays (or CSV columns) of the inputs' file. */
    public static Targets named(List<String> names) {
      if (names.isEmpty()) {
        throw new JobException("no target arrays named", Setting.DATA, "name the arrays or columns that hold the targets");
      }
      return new Targets(Optional.empty(), names, Map.of());
    }

    /** The targets of several outputs, by output key (a model trained on all of them together). */
    public static Targets byOutput(Map<String, Targets> targets) {
      if (targets.size() < 2) {
        throw new JobException("targets by output name " + targets.size() + " output(s)", Setting.DATA,
            "give the targets alone for one output, or those of each output for several");
      }
      return new Targets(Optional.empty(), List.of(), targets);
    }

    /**
     * A {@code .npy} path, or comma-separated names, or {@code OUTPUT=TARGETS} pairs joined by
     * commas (each a {@code .npy} path or an array's name): how a job file or a command line writes
     * them.
     */
    public static Targets parse(String text, Path base) {
      if (text.contains("=")) {
        Map<String, Targets> out = new java.util.LinkedHashMap<>();
        for (String pair : text.split(",")) {
          int eq = pair.indexOf('=');
          String output = eq < 0 ? "" : pair.substring(0, eq).strip();
          String value = eq < 0 ? "" : pair.substring(eq + 1).strip();
          if (output.isEmpty() || value.isEmpty()) {
            throw new JobException("'" + pair.strip() + "' is not OUTPUT=TARGETS", Setting.DATA,
                "write each output's targets as OUTPUT=FILE.npy or OUTPUT=ARRAY, joined by commas");
          }
          if (out.put(output, parse(value, base)) != null) {
            throw new JobException("output " + output + " is given targets twice", Setting.DATA, "give them once");
          }
        }
        return byOutput(out);
      }
      if (text.toLowerCase(java.util.Locale.ROOT).endsWith(".npy")) {
        return file(base.resolve(text));
      }
      return named(java.util.Arrays.stream(text.split(",")).map(String::strip).filter(n -> !n.isEmpty()).toList());
    }

    @Override
    public String toString() {
      if (!byOutput.isEmpty()) {
        return String.join(",", byOutput.entrySet().stream().map(e -> e.getKey() + "=" + e.getValue()).toList());
      }
      return file.map(Path::toString).orElse(String.join(",", names));
    }
  }

  /** Array examples with targets in a {@code .npy} file (see {@link Arrays}). */
  static Arrays arrays(Path inputs, Path targets) {
    return new Arrays(inputs, Targets.file(targets), Optional.empty());
  }

  /** Array examples whose targets are arrays or columns {@code targets} of the inputs' file. */
  static Arrays arrays(Path inputs, List<String> targets) {
    return new Arrays(inputs, Targets.named(targets), Optional.empty());
  }

  static JobData images(Path root) {
    return new Images(root);
  }

  static JobData clips(Path root, int frames) {
    return new Clips(root, frames);
  }

  static JobData text(List<Path> train) {
    return new Text(train, List.of());
  }

  static JobData text(List<Path> train, List<Path> validation) {
    return new Text(train, validation);
  }

  /** The task this data trains: image-classification, video-classification, causal-lm or arrays. */
  default String task() {
    if (this instanceof Arrays) {
      return "arrays";
    }
    if (this instanceof Images) {
      return "image-classification";
    }
    return this instanceof Clips ? "video-classification" : "causal-lm";
  }
}
