package org.finetune.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.finetune.data.ClipFolder;
import org.finetune.data.ImageDataset;
import org.finetune.data.ImageOps;
import org.finetune.data.NpyArray;
import org.finetune.export.ExportTest;
import org.finetune.model.KerasSavedModel;
import org.finetune.testing.Fixture;
import org.finetune.testing.Python;
import org.finetune.testing.TreeDigest;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;
import org.tensorflow.Tensor;

/**
 * The video case end to end through the CLI: clips of a moving shape whose class is the
 * direction of motion ({@code scripts/make_clips.py}), the per-frame InceptionV3 pretrained on
 * still frames ({@code scripts/make_video_backbone.py}), a head that sees the order of frames and
 * one that averages them, held-out accuracy, and the 5-D export reloaded by Python.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class VideoCommandTest {
  static final Path BACKBONE = Fixture.projectRoot().resolve("savedmodels/generated/video_inception_v3/keras3_export/model");
  static final int FRAMES = 8;

  @TempDir
  static Path tmp;
  Path clips;
  Path conv;
  Path average;
  String backboneDigest;

  /** Scores per held-out clip: its true class and the model's probability for each class. */
  record Scored(String truth, Map<String, Double> scores) {
    String top() {
      return scores.entrySet().stream().max(Map.Entry.comparingByValue()).orElseThrow().getKey();
    }
  }

  @BeforeAll
  void trainBothHeads() throws IOException {
    assertTrue(Files.isDirectory(BACKBONE), BACKBONE + " is missing: scripts/test makes it with"
        + " scripts/make_video_backbone.py");
    backboneDigest = TreeDigest.of(BACKBONE);
    clips = tmp.resolve("clips");
    Python.run("make_clips.py", "--out", clips.toString(), "--train", "96", "--test", "20", "--frames",
        Integer.toString(FRAMES));
    conv = train("conv");
    average = train("average");
  }

  private Path train(String temporal) {
    Path out = tmp.resolve("video_" + temporal);
    CliRun run = CliRun.of("train", BACKBONE.toString(), "--task", "video-classification", "--data",
        clips.resolve("train").toString(), "--frames", Integer.toString(FRAMES), "--temporal", temporal, "--epochs", "30",
        "--batch-size", "16", "--out", out.toString());
    assertEquals(0, run.exit(), run.err());
    assertTrue(run.out().contains("clips of 8 frames for training"), run.out());
    assertTrue(run.out().contains("Caching the base's features"), run.out());
    return out;
  }

  private static List<Scored> predict(Path model, Path clipsDir) {
    CliRun run = CliRun.of("predict", model.toString(), "--clips", clipsDir.toString(), "--top", "5", "--format",
        "json");
    assertEquals(0, run.exit(), run.err());
    JsonArray rows = JsonParser.parseString(run.out()).getAsJsonArray();
    List<Scored> out = new java.util.ArrayList<>();
    for (JsonElement e : rows) {
      JsonObject row = e.getAsJsonObject();
      Path clip = Path.of(row.get("file").getAsString());
      Map<String, Double> scores = new HashMap<>();
      for (JsonElement t : row.getAsJsonArray("top")) {
        scores.put(t.getAsJsonObject().get("class").getAsString(), t.getAsJsonObject().get("score").getAsDouble());
      }
      out.add(new Scored(clip.getParent().getFileName().toString(), scores));
    }
    return out;
  }

  private static double accuracy(List<Scored> scored) {
    return scored.stream().filter(s -> s.truth().equals(s.top())).count() / (double) scored.size();
  }

  /** Among held-out clips moving left or right, how often p(left) vs p(right) picks the true one. */
  private static double leftVersusRight(List<Scored> scored) {
    List<Scored> lr = scored.stream().filter(s -> s.truth().equals("left") || s.truth().equals("right")).toList();
    long right = lr.stream().filter(s -> (s.scores().get("left") > s.scores().get("right"))
        == s.truth().equals("left")).count();
    return right / (double) lr.size();
  }

  @Test
  void theOrderAwareHeadTellsDirectionsApartWhileAveragingCannotTellLeftFromRight() {
    List<Scored> convScores = predict(conv, clips.resolve("test"));
    List<Scored> avgScores = predict(average, clips.resolve("test"));
    assertEquals(100, convScores.size());
    double convAcc = accuracy(convScores);
    double avgAcc = accuracy(avgScores);
    double convLr = leftVersusRight(convScores);
    double avgLr = leftVersusRight(avgScores);
    System.out.printf(Locale.ROOT, "video: held-out accuracy (100 clips, 5 classes): temporal conv %.3f, average"
        + " %.3f; left vs right (40 clips): conv %.3f, average %.3f%n", convAcc, avgAcc, convLr, avgLr);
    assertTrue(convAcc >= 0.9, "the order-aware head reaches 90%: " + convAcc);
    assertTrue(convLr >= 0.9, "the order-aware head tells left from right: " + convLr);
    // The frames of a left clip are those of a right clip in reverse order: a mean over frames
    // gives the same vector for both, so the baseline can only guess (40 clips: 0.5 +- 0.08).
    assertTrue(avgLr >= 0.25 && avgLr <= 0.75, "averaging stays near chance on left vs right: " + avgLr);
    assertEquals(backboneDigest, TreeDigest.of(BACKBONE), "the backbone is never touched");
  }

  @Test
  void evaluateReportsTheSameAccuracyAsThePredictions() {
    CliRun run = CliRun.of("evaluate", conv.toString(), "--data", clips.resolve("test").toString());
    assertEquals(0, run.exit(), run.err());
    assertTrue(run.out().contains("100 clips of 8 frames, 5 classes"), run.out());
    double printed = Double.parseDouble(run.out().replaceAll("(?s).*accuracy ([0-9.]+).*", "$1"));
    assertEquals(accuracy(predict(conv, clips.resolve("test"))), printed, 1e-4);
    CliRun images = CliRun.of("evaluate", conv.toString(), "--data", clips.resolve("test").toString(), "--task",
        "image-classification", "--preprocess", "tf");
    // The model's input decides: a video model evaluates clips whatever --task says between the two.
    assertEquals(0, images.exit(), images.err());
  }

  @Test
  void pythonReloadsTheVideoExportWithJavasOutputs() throws IOException {
    ClipFolder test = ClipFolder.scan(clips.resolve("test"));
    List<ClipFolder.Clip> some = test.clips().stream().filter(c -> c.dir().getFileName().toString().endsWith("_000"))
        .toList();
    NpyArray frames;
    try (ImageDataset data = ImageDataset.clips(ClipFolder.frames(some, FRAMES), FRAMES,
        ImageDataset.Options.of(75, 75, ImageOps.Preprocess.TF, some.size()).shuffled(false))) {
      Iterator<ImageDataset.Batch> it = data.epoch(0, 0);
      frames = it.next().images();
    }
    long[] s = frames.shape();
    NpyArray batch = new NpyArray("float32", new long[] {s[0] / FRAMES, FRAMES, s[1], s[2], s[3]}, frames.data());
    Map<String, NpyArray> javaOutputs = new LinkedHashMap<>();
    String input;
    try (KerasSavedModel model = KerasSavedModel.open(conv)) {
      var sig = model.info().selectedSignature();
      input = sig.inputs().get(0).key();
      assertEquals(List.of(-1L, (long) FRAMES, 75L, 75L, 3L), sig.inputs().get(0).shape());
      try (Tensor x = batch.toTensor()) {
        Map<String, Tensor> result = model.predict(sig.name(), Map.of(input, x));
        result.forEach((k, t) -> {
          javaOutputs.put(k, NpyArray.of(t));
          t.close();
        });
      }
    }
    Path in = tmp.resolve("clips.npy");
    batch.write(in);
    Path out = tmp.resolve("python");
    ExportTest.pythonLoads(conv, input, in, out, tmp.resolve("check.json"));
    double worst = ExportTest.compareOutputs("video conv", javaOutputs, out, 1);
    System.out.printf(Locale.ROOT, "video export: %d clips [%d, %d, 75, 75, 3]; Python (tf.saved_model.load,"
        + " TFSMLayer) vs Java: %.3g%n", some.size(), some.size(), FRAMES, worst);
    assertTrue(worst <= 1e-5, "outputs within 1e-5: " + worst);
  }

  private static void assertBadInput(CliRun run, String... mustContain) {
    assertEquals(ExitCode.BAD_INPUT, run.exit(), run.err());
    assertEquals(1, run.errLine().lines().count(), run.err());
    for (String m : mustContain) {
      assertTrue(run.err().contains(m), "stderr should contain '" + m + "': " + run.err());
    }
  }

  @Test
  void clipFoldersThatCannotBeUsedEndInOneLineNamingTheFolder() throws IOException {
    Path root = tmp.resolve("bad_clips");
    Path emptyClip = Files.createDirectories(root.resolve("left").resolve("clip_000"));
    Files.createDirectories(root.resolve("right").resolve("clip_000"));
    Files.copy(clips.resolve("train/right/right_000/frame_00.png"), root.resolve("right/clip_000/frame_00.png"));
    assertBadInput(CliRun.of("train", BACKBONE.toString(), "--task", "video-classification", "--data", root.toString()),
        emptyClip.toString(), "has no frames");
    Files.delete(emptyClip);
    assertBadInput(CliRun.of("train", BACKBONE.toString(), "--task", "video-classification", "--data", root.toString()),
        root.resolve("left").toString(), "has no clip folders");
    assertBadInput(CliRun.of("train", BACKBONE.toString(), "--task", "video-classification", "--data",
        clips.resolve("train").toString(), "--frames", "1"), "--frames must be at least 2");
    assertBadInput(CliRun.of("train", BACKBONE.toString(), "--task", "video-classification", "--data",
        clips.resolve("train").toString(), "--temporal", "lstm"), "--temporal must be conv or average");
    assertBadInput(CliRun.of("train", BACKBONE.toString(), "--data", clips.resolve("train").toString(), "--frames", "8"),
        "--frames and --temporal are for --task video-classification");
    Path out = tmp.resolve("never");
    assertBadInput(CliRun.of("train", BACKBONE.toString(), "--task", "video-classification", "--data",
        clips.resolve("train").toString(), "--flip", "--out", out.toString()), "clips cannot be augmented");
    assertTrue(Files.notExists(out), "no partial output");
    assertBadInput(CliRun.of("predict", conv.toString(), "--images", clips.resolve("test/left/left_000").toString()),
        "takes clips of 8 frames: use --clips");
    assertBadInput(CliRun.of("evaluate", BACKBONE.toString(), "--task", "video-classification", "--data",
        clips.resolve("test").toString()), "takes images, not clips");
  }

  @Test
  void aClipShorterThanTheFramesAskedForRepeatsFramesEvenly() {
    ClipFolder.Clip c = new ClipFolder.Clip(Path.of("c"), List.of(Path.of("a"), Path.of("b"), Path.of("c")), 0);
    // round(i * 2 / 4) for i = 0..4: 0, 0.5, 1, 1.5, 2 rounded half up.
    assertEquals(List.of(Path.of("a"), Path.of("b"), Path.of("b"), Path.of("c"), Path.of("c")), c.sample(5));
    ClipFolder.Clip longer = new ClipFolder.Clip(Path.of("d"), java.util.stream.IntStream.range(0, 10)
        .mapToObj(i -> Path.of("f" + i)).toList(), 1);
    assertEquals(List.of(Path.of("f0"), Path.of("f3"), Path.of("f6"), Path.of("f9")), longer.sample(4));
  }

  @Test
  void gradualUnfreezingReachesInceptionsTopBlocksThroughEveryFrame() throws IOException {
    Path few = tmp.resolve("few");
    Python.run("make_clips.py", "--out", few.toString(), "--train", "4", "--test", "1", "--frames", "4", "--seed", "3");
    Path out = tmp.resolve("video_unfrozen");
    CliRun run = CliRun.of("train", BACKBONE.toString(), "--task", "video-classification", "--data",
        few.resolve("train").toString(), "--frames", "4", "--epochs", "2", "--batch-size", "4", "--unfreeze", "gradual:1",
        "--val-split", "0", "--lr", "1e-4", "--out", out.toString());
    assertEquals(0, run.exit(), run.err());
    // Stage 2 trains the head (4 variables: temporal and output kernels and biases) and mixed9.
    assertTrue(run.out().contains("stage 1/11, 4 variables training"), run.out());
    assertTrue(run.out().contains("stage 2/11, 22 variables training"), run.out());
    assertTrue(!run.out().contains("Caching the base's features"), "no cache while the base trains");
    List<Scored> scored = predict(out, few.resolve("test"));
    assertEquals(5, scored.size());
    for (Scored sc : scored) {
      assertEquals(1.0, sc.scores().values().stream().mapToDouble(Double::doubleValue).sum(), 1e-5);
    }
    assertEquals(backboneDigest, TreeDigest.of(BACKBONE));
  }
}
