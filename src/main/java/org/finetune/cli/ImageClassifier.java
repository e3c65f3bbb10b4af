package org.finetune.cli;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.finetune.data.ImageDataset;
import org.finetune.data.ImageFolder;
import org.finetune.data.NpyArray;
import org.finetune.export.Exporter;
import org.finetune.model.KerasSavedModel;
import org.finetune.savedmodel.TensorSpec;
import org.tensorflow.Tensor;

/** Runs an image classifier (a SavedModel whose output is [batch, classes]) over image files. */
final class ImageClassifier {
  /** One image's (or clip's: its folder) class probabilities (or scores). */
  record Prediction(Path file, int label, float[] scores) {
    int top() {
      int best = 0;
      for (int c = 1; c < scores.length; c++) {
        if (scores[c] > scores[best]) {
          best = c;
        }
      }
      return best;
    }
  }

  private ImageClassifier() {}

  /** Predictions of {@code model}'s signature for the dataset's images, in its order, unreadable files skipped. */
  static List<Prediction> run(KerasSavedModel model, org.finetune.job.ImageInput image, ImageDataset data) {
    TensorSpec output = model.info().selectedSignature().outputs().get(0);
    return run(data, images -> {
      if (image.frames() > 0) {
        // Frames of a clip come consecutively: [clips * frames, h, w, 3] is [clips, frames, h, w, 3].
        long[] s = images.shape();
        images = new NpyArray(images.dtype(), new long[] {s[0] / image.frames(), image.frames(), s[1], s[2], s[3]},
            images.data());
      }
      try (Tensor x = images.toTensor()) {
        Map<String, Tensor> result = model.predict(model.info().signature(), Map.of(image.input(), x));
        try {
          return NpyArray.of(result.get(output.key()));
        } finally {
          result.values().forEach(Tensor::close);
        }
      }
    });
  }

  /**
   * Predictions of {@code predictor} (a batch of images to {@code [batch, classes]} scores) over the
   * dataset; for a dataset of clips, one per clip (named by its folder).
   */
  static List<Prediction> run(ImageDataset data, java.util.function.Function<NpyArray, NpyArray> predictor) {
    List<Prediction> out = new ArrayList<>();
    Iterator<ImageDataset.Batch> it = data.epoch(0, 0);
    while (it.hasNext()) {
      ImageDataset.Batch b = it.next();
      int group = data.framesPerClip();
      int n = (int) b.images().shape()[0] / group;
      if (n == 0) {
        continue;
      }
      NpyArray scores = predictor.apply(b.images());
      if (scores.shape().length != 2) {
        throw new UsageException("the model's output has shape " + java.util.Arrays.toString(scores.shape())
            + "; a classifier's output is [batch, classes]");
      }
      int classes = (int) scores.shape()[1];
      double[] v = scores.toDoubles();
      double[] labels = b.labels().toDoubles();
      for (int i = 0; i < n; i++) {
        float[] row = new float[classes];
        for (int c = 0; c < classes; c++) {
          row[c] = (float) v[i * classes + c];
        }
        Path file = group == 1 ? b.files().get(i) : b.files().get(i * group).getParent();
        out.add(new Prediction(file, (int) labels[i], row));
      }
    }
    return out;
  }

  /** The provenance an export of ours records (assets/finetune.json); empty for other models or a damaged file. */
  static Optional<org.finetune.export.Provenance> provenance(Path modelDir) {
    try {
      return org.finetune.export.Provenance.read(modelDir);
    } catch (IllegalArgumentException e) {
      return Optional.empty();
    }
  }

  /** Class names an export of ours records, in output order (empty when it recorded none). */
  static List<String> recordedClasses(Path modelDir) {
    return provenance(modelDir).map(org.finetune.export.Provenance::classes).orElse(List.of());
  }

  /**
   * The frames of the clips under {@code paths} ({@code frames} per clip, label 0): every folder
   * that holds image files directly is a clip, in sorted order.
   */
  static List<ImageFolder.Item> clipItems(List<String> paths, int frames) {
    java.util.TreeSet<Path> clips = new java.util.TreeSet<>();
    for (String p : paths) {
      Path path = Path.of(p);
      if (!Files.isDirectory(path)) {
        throw new UsageException("no clip folder " + path + "; give folders of frames (or folders of such folders)");
      }
      try (var walk = Files.walk(path)) {
        walk.filter(Files::isRegularFile).filter(ImageFolder::isImageName).forEach(f -> clips.add(f.getParent()));
      } catch (java.io.IOException e) {
        throw new UsageException("cannot list " + path + ": " + e.getMessage());
      }
    }
    if (clips.isEmpty()) {
      throw new UsageException("no frames found in " + String.join(", ", paths));
    }
    List<org.finetune.data.ClipFolder.Clip> list = new ArrayList<>();
    for (Path dir : clips) {
      try (var files = Files.list(dir)) {
        List<Path> frameFiles = files.filter(Files::isRegularFile).filter(ImageFolder::isImageName).sorted().toList();
        list.add(new org.finetune.data.ClipFolder.Clip(dir, frameFiles, 0));
      } catch (java.io.IOException e) {
        throw new UsageException("cannot list " + dir + ": " + e.getMessage());
      }
    }
    return org.finetune.data.ClipFolder.frames(list, frames);
  }

  /** Items for files or folders given on the command line (folders searched for images; label 0). */
  static List<ImageFolder.Item> items(List<String> paths) {
    Map<Path, ImageFolder.Item> out = new LinkedHashMap<>();
    for (String p : paths) {
      Path path = Path.of(p);
      if (Files.isDirectory(path)) {
        try (var walk = Files.walk(path)) {
          walk.filter(Files::isRegularFile).filter(ImageFolder::isImageName).sorted()
              .forEach(f -> out.putIfAbsent(f, new ImageFolder.Item(f, 0)));
        } catch (java.io.IOException e) {
          throw new UsageException("cannot list " + path + ": " + e.getMessage());
        }
      } else if (Files.isRegularFile(path)) {
        out.putIfAbsent(path, new ImageFolder.Item(path, 0));
      } else {
        throw new UsageException("no image file or folder " + path);
      }
    }
    if (out.isEmpty()) {
      throw new UsageException("no images found in " + String.join(", ", paths));
    }
    return new ArrayList<>(out.values());
  }
}
