package org.finetune.data;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;

/**
 * Labelled video clips as folders of frames: {@code <root>/<class>/<clip>/<frame>.png|jpg}, one
 * sub-folder per class (sorted by name, as for images), one folder of frames per clip, frames
 * in name order (so {@code frame_0001.png}, {@code frame_0002.png}, ... as ffmpeg writes them).
 *
 * @param root the folder
 * @param classes class names, sorted; a label is an index into this list
 * @param clips every clip with its label
 */
public record ClipFolder(Path root, List<String> classes, List<Clip> clips) {
  /** A clip: its folder, its frames in order, its label. */
  public record Clip(Path dir, List<Path> frames, int label) {
    public Clip {
      frames = List.copyOf(frames);
    }

    /**
     * {@code count} frames spread evenly over the clip, first and last included (frame
     * {@code round(i * (n - 1) / (count - 1))} for i = 0 .. count-1); a clip shorter than
     * {@code count} repeats frames.
     */
    public List<Path> sample(int count) {
      if (count < 1) {
        throw new IllegalArgumentException("need at least one frame per clip, got " + count);
      }
      List<Path> out = new ArrayList<>(count);
      int n = frames.size();
      for (int i = 0; i < count; i++) {
        int k = count == 1 ? (n - 1) / 2 : (int) Math.round(i * (n - 1) / (double) (count - 1));
        out.add(frames.get(k));
      }
      return out;
    }
  }

  /** A training and a validation part, by clip. */
  public record Split(List<Clip> train, List<Clip> validation) {
    public Split {
      train = List.copyOf(train);
      validation = List.copyOf(validation);
    }
  }

  public ClipFolder {
    classes = List.copyOf(classes);
    clips = List.copyOf(clips);
  }

  /**
   * Scans {@code root}.
   *
   * @throws IllegalArgumentException when it is not a folder, has fewer than two class folders, a
   *     class folder holds no clip folder, or a clip folder holds no frame (each says which and what to do)
   */
  public static ClipFolder scan(Path root) {
    if (!Files.isDirectory(root)) {
      throw new IllegalArgumentException(root + " is not a folder; give a folder of class folders, each holding one"
          + " folder of frames per clip");
    }
    List<Path> classDirs = folders(root);
    if (classDirs.size() < 2) {
      throw new IllegalArgumentException(root + " has " + (classDirs.isEmpty() ? "no class folders" : "a single class"
          + " folder (" + classDirs.get(0).getFileName() + ")") + "; a classifier needs at least two classes, each a"
          + " folder of clip folders (e.g. " + root.resolve("left").resolve("clip_001") + "/frame_0001.png)");
    }
    List<String> classes = new ArrayList<>();
    List<Clip> clips = new ArrayList<>();
    for (Path dir : classDirs) {
      List<Path> clipDirs = folders(dir);
      if (clipDirs.isEmpty()) {
        throw new IllegalArgumentException("class folder " + dir + " has no clip folders; put each clip's frames in a"
            + " folder of its own (e.g. " + dir.resolve("clip_001") + "/frame_0001.png)");
      }
      int label = classes.size();
      classes.add(dir.getFileName().toString());
      for (Path clipDir : clipDirs) {
        List<Path> frames;
        try (Stream<Path> list = Files.list(clipDir)) {
          frames = list.filter(Files::isRegularFile).filter(ImageFolder::isImageName).sorted().toList();
        } catch (IOException e) {
          throw new UncheckedIOException("cannot list " + clipDir + ": " + e.getMessage(), e);
        }
        if (frames.isEmpty()) {
          throw new IllegalArgumentException("clip folder " + clipDir + " has no frames (.png, .jpg, ...); remove it or"
              + " extract its frames there");
        }
        clips.add(new Clip(clipDir, frames, label));
      }
    }
    return new ClipFolder(root, classes, clips);
  }

  /** A seeded split: {@code fraction} of the clips (shuffled) for validation, the rest for training. */
  public Split split(double fraction, long seed) {
    if (!(fraction >= 0 && fraction < 1)) {
      throw new IllegalArgumentException("the validation fraction must be in [0, 1), got " + fraction);
    }
    List<Clip> shuffled = new ArrayList<>(clips);
    Collections.shuffle(shuffled, new Random(seed));
    int validation = (int) (fraction * shuffled.size());
    if (fraction > 0 && validation == 0) {
      throw new IllegalArgumentException("a validation fraction of " + fraction + " leaves no validation clip among "
          + shuffled.size());
    }
    return new Split(shuffled.subList(0, shuffled.size() - validation),
        shuffled.subList(shuffled.size() - validation, shuffled.size()));
  }

  /** The frames of {@code clips}, {@code frames} per clip in order, each with its clip's label. */
  public static List<ImageFolder.Item> frames(List<Clip> clips, int frames) {
    List<ImageFolder.Item> out = new ArrayList<>(clips.size() * frames);
    for (Clip c : clips) {
      c.sample(frames).forEach(f -> out.add(new ImageFolder.Item(f, c.label())));
    }
    return out;
  }

  private static List<Path> folders(Path dir) {
    try (Stream<Path> list = Files.list(dir)) {
      return list.filter(Files::isDirectory).filter(p -> !ImageFolder.hidden(p)).sorted().toList();
    } catch (IOException e) {
      throw new UncheckedIOException("cannot list " + dir + ": " + e.getMessage(), e);
    }
  }
}
