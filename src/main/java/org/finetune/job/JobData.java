package org.finetune.job;

import java.nio.file.Path;
import java.util.List;
import java.util.Objects;
import org.finetune.hint.Setting;

/**
 * What a job trains on; the kind of data decides the task: labelled images (image
 * classification), labelled clips of frames (video classification), or text (a causal language
 * model).
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

  /** The task this data trains: image-classification, video-classification or causal-lm. */
  default String task() {
    if (this instanceof Images) {
      return "image-classification";
    }
    return this instanceof Clips ? "video-classification" : "causal-lm";
  }
}
