package org.finetune.data;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.Set;
import java.util.stream.Stream;

/**
 * A labelled image folder as Keras's {@code image_dataset_from_directory} reads one: one
 * sub-folder per class, classes sorted by name, images found in each class folder and below
 * (hidden files skipped), files in sorted order.
 *
 * @param root the folder
 * @param classes class names, sorted; a label is an index into this list
 * @param items every image file with its label
 */
public record ImageFolder(Path root, List<String> classes, List<Item> items) {
  /** Extensions we take as images (the bytes decide the format). */
  public static final Set<String> EXTENSIONS = Set.of(".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff");

  /** An image file and its label. */
  public record Item(Path file, int label) {}

  /** A training and a validation part. */
  public record Split(List<Item> train, List<Item> validation) {
    public Split {
      train = List.copyOf(train);
      validation = List.copyOf(validation);
    }
  }

  public ImageFolder {
    classes = List.copyOf(classes);
    items = List.copyOf(items);
  }

  /**
   * Scans {@code root}.
   *
   * @throws IllegalArgumentException when it is not a folder, has fewer than two class folders,
   *     or a class folder holds no image (each says which and what to do)
   */
  public static ImageFolder scan(Path root) {
    if (!Files.isDirectory(root)) {
      throw new IllegalArgumentException(root + " is not a folder; give a folder with one sub-folder per class");
    }
    List<Path> classDirs;
    try (Stream<Path> list = Files.list(root)) {
      classDirs = list.filter(Files::isDirectory).filter(p -> !hidden(p)).sorted().toList();
    } catch (IOException e) {
      throw new UncheckedIOException("cannot list " + root + ": " + e.getMessage(), e);
    }
    if (classDirs.isEmpty()) {
      throw new IllegalArgumentException(root + " has no class folders; put each class's images in a sub-folder named"
          + " after the class (e.g. " + root.resolve("cows") + "/, " + root.resolve("horses") + "/)");
    }
    if (classDirs.size() == 1) {
      throw new IllegalArgumentException(root + " has a single class folder (" + classDirs.get(0).getFileName()
          + "); a classifier needs at least two classes");
    }
    List<String> classes = new ArrayList<>();
    List<Item> items = new ArrayList<>();
    for (Path dir : classDirs) {
      List<Path> files;
      try (Stream<Path> walk = Files.walk(dir)) {
        files = walk.filter(Files::isRegularFile).filter(p -> !hidden(p)).filter(ImageFolder::imageName).sorted()
            .toList();
      } catch (IOException e) {
        throw new UncheckedIOException("cannot list " + dir + ": " + e.getMessage(), e);
      }
      if (files.isEmpty()) {
        throw new IllegalArgumentException("class folder " + dir + " has no images (" + String.join(", ",
            EXTENSIONS.stream().sorted().toList()) + ")");
      }
      int label = classes.size();
      classes.add(dir.getFileName().toString());
      files.forEach(f -> items.add(new Item(f, label)));
    }
    return new ImageFolder(root, classes, items);
  }

  /** A seeded split: {@code fraction} of the images (shuffled) for validation, the rest for training. */
  public Split split(double fraction, long seed) {
    if (!(fraction >= 0 && fraction < 1)) {
      throw new IllegalArgumentException("the validation fraction must be in [0, 1), got " + fraction);
    }
    List<Item> shuffled = new ArrayList<>(items);
    Collections.shuffle(shuffled, new Random(seed));
    int validation = (int) (fraction * shuffled.size());
    if (fraction > 0 && validation == 0) {
      throw new IllegalArgumentException("a validation fraction of " + fraction + " leaves no validation image among "
          + shuffled.size());
    }
    return new Split(shuffled.subList(0, shuffled.size() - validation),
        shuffled.subList(shuffled.size() - validation, shuffled.size()));
  }

  /** Whether {@code p} is named as an image we take (a known extension, not hidden). */
  public static boolean isImageName(Path p) {
    return !hidden(p) && imageName(p);
  }

  static boolean hidden(Path p) {
    return p.getFileName().toString().startsWith(".");
  }

  static boolean imageName(Path p) {
    String name = p.getFileName().toString().toLowerCase(Locale.ROOT);
    int dot = name.lastIndexOf('.');
    return dot >= 0 && EXTENSIONS.contains(name.substring(dot));
  }
}
