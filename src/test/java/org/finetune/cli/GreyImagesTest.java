package org.finetune.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import javax.imageio.ImageIO;
import org.finetune.data.ArrayTable;
import org.finetune.data.NpyArray;
import org.finetune.testing.Python;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A grey-image CNN (the Keras 3 Sequential of scripts/make_array_models.py, input 16x16x1) trained
 * from a folder of grey PNGs, as Keras trains it on {@code image_dataset_from_directory(...,
 * color_mode="grayscale")}: decoded to one channel, preprocessed, the same Adam steps.
 */
class GreyImagesTest {
  static final int IMAGES = 32;
  static final int EPOCHS = 5;

  @TempDir
  Path tmp;

  @Test
  void aGreyCnnTrainsFromAFolderOfGreyPngsAsKerasFitDoes() throws IOException {
    Path dir = ArrayTaskTest.arrayCase("sequential_cnn");
    Path folder = greyFolder(dir, tmp.resolve("images"));
    // One batch of all the images per epoch. The image task shuffles, so the order within the batch
    // differs from Keras's: the floor is how far a second run, in another order (another seed),
    // lands from the first; BatchNormalization's beta sums 8192 terms that largely cancel, so the
    // order moves it by some 1e-5.
    for (String seed : List.of("1", "2")) {
      CliRun run = CliRun.of("train", dir.resolve("keras3_export").toString(), "--data", folder.toString(),
          "--val-split", "0", "--batch-size", Integer.toString(IMAGES), "--epochs", Integer.toString(EPOCHS),
          "--optimizer", "adam", "--lr", "0.01", "--preprocess", "tf", "--seed", seed, "--out",
          tmp.resolve("export" + seed).toString());
      assertEquals(ExitCode.OK, run.exit(), run.err() + run.out());
      assertTrue(run.out().contains("input image 16x16 grey, preprocessing tf"), run.out());
    }
    Path export = tmp.resolve("export1");
    Path out = tmp.resolve("oracle.json");
    Python.run("reference_fit.py", "--model", dir.resolve("model.keras").toString(), "--base-export",
        dir.resolve("keras3_export").toString(), "--java-export", export.toString(), "--image-folder",
        folder.toString(), "--image-size", "16x16", "--color-mode", "grayscale", "--preprocess", "tf",
        "--optimizer", "{\"name\": \"adam\", \"learning_rate\": 0.01}", "--loss",
        "sparse_categorical_crossentropy",
        "--batch-size", Integer.toString(IMAGES), "--steps", "1", "--epochs", Integer.toString(EPOCHS),
        "--java-floor", tmp.resolve("export2").toString(), "--out", out.toString());
    JsonObject r = JsonParser.parseString(Files.readString(out)).getAsJsonObject();
    ArrayTaskTest.assertMatches(r, "grey CNN from a folder of grey PNGs, Adam", 1);
  }

  /**
   * {@code predict --images} feeds a grey PNG as the model's one channel, preprocessed as asked:
   * its scores equal the model's on the same pixels given as an array; preprocessing that
   * subtracts a mean per RGB channel is refused (exit 2, naming the flag).
   */
  @Test
  void predictFeedsGreyImagesAndRefusesRgbPreprocessing() throws IOException {
    Path dir = ArrayTaskTest.arrayCase("sequential_cnn");
    Path folder = greyFolder(dir, tmp.resolve("images"));
    Path png = folder.resolve("class_0").resolve("000.png");
    Path model = dir.resolve("keras3_export");
    CliRun run = CliRun.of("predict", model.toString(), "--images", png.toString(), "--preprocess", "tf", "--format",
        "json", "--top", "3");
    assertEquals(ExitCode.OK, run.exit(), run.err() + run.out());
    double[] scores = new double[3];
    for (var e : JsonParser.parseString(run.out()).getAsJsonArray().get(0).getAsJsonObject().getAsJsonArray("top")) {
      JsonObject o = e.getAsJsonObject();
      scores[o.get("index").getAsInt()] = o.get("score").getAsDouble();
    }
    BufferedImage img = ImageIO.read(png.toFile());
    java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(4 * 16 * 16).order(java.nio.ByteOrder.LITTLE_ENDIAN);
    for (int y = 0; y < 16; y++) {
      for (int x = 0; x < 16; x++) {
        b.putFloat(img.getRaster().getSample(x, y, 0) / 127.5f - 1f);
      }
    }
    double[] expected;
    try (org.finetune.serving.Predictor p = org.finetune.serving.Predictor.open(model)) {
      expected = p.predict(java.util.Map.of("image", new NpyArray("float32", new long[] {1, 16, 16, 1}, b.array())))
          .outputs().values().iterator().next().toDoubles();
    }
    for (int k = 0; k < 3; k++) {
      assertEquals(expected[k], scores[k], 1e-6, "class " + k + ": " + run.out());
    }
    CliRun caffe = CliRun.of("predict", model.toString(), "--images", png.toString(), "--preprocess", "caffe");
    assertEquals(ExitCode.BAD_INPUT, caffe.exit(), caffe.err());
    assertTrue(caffe.err().contains("takes grey images") && caffe.err().contains("--preprocess tf or none"),
        caffe.err());
  }

  /** The fixture's first images as 8-bit grey PNGs in one folder per label ({@code class_<label>}). */
  static Path greyFolder(Path dir, Path folder) throws IOException {
    NpyArray images = ArrayTable.read(dir.resolve("data/train.npz"), "image").get("image").all();
    double[] labels = NpyArray.read(dir.resolve("data/labels.npy")).toDoubles();
    double[] pixels = images.toDoubles();
    int h = (int) images.shape()[1];
    int w = (int) images.shape()[2];
    for (int i = 0; i < IMAGES; i++) {
      BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_BYTE_GRAY);
      for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
          int v = (int) Math.round(pixels[(i * h + y) * w + x] * 255);
          img.getRaster().setSample(x, y, 0, v);
        }
      }
      Path classDir = Files.createDirectories(folder.resolve("class_" + (int) labels[i]));
      ImageIO.write(img, "png", classDir.resolve(String.format("%03d.png", i)).toFile());
    }
    return folder;
  }
}
