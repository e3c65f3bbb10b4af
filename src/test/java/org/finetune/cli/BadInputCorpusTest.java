package org.finetune.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.finetune.data.ImageDecoder;
import org.finetune.testing.Fixture;
import org.finetune.testing.TreeDigest;
import org.junit.jupiter.api.Named;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The bad-input corpus ({@code testdata/bad/}, written by {@code scripts/make_bad_inputs.py}): each
 * case runs the command line its {@code case.json} gives and must end as it says: exit 2 with one
 * line on stderr naming the file at fault and the fix, or exit 0 with one warning (where skipping
 * is the documented behaviour) or none (a file that decodes); never a stack trace, never an output
 * left behind, and neither the corpus nor a fixture it runs on is ever written to.
 */
class BadInputCorpusTest {
  static final Path CORPUS = Fixture.projectRoot().resolve("testdata/bad");

  /** The kinds of bad input issue 9 asks the corpus to cover, each at least once. */
  static final Set<String> REQUIRED_KINDS = Set.of(
      "saved_model.pb truncated", "saved_model.pb garbage", "variables.index bit-flipped",
      "variables.data bit-flipped", "variable shape disagrees with the graph", "a missing signature",
      "a zero-byte image", "a truncated PNG", "a truncated JPEG", "a PNG whose header claims 50000x50000",
      "a CMYK JPEG", "a 16-bit PNG", "text with invalid UTF-8", "an empty dataset", "a class folder with no images",
      "labels beyond the head size", "a plan file with unknown keys", "a plan file with bad values",
      "a jobs file with unknown keys", "a jobs file with bad values");

  private static final Pattern FIXTURE = Pattern.compile("\\{fixture:([^}]+)}");

  @TempDir
  Path tmp;

  static Stream<Named<Path>> cases() {
    return caseFolders().stream().map(dir -> Named.of(dir.getFileName().toString(), dir));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("cases")
  void endsAsItsManifestSays(Path dir) {
    JsonObject manifest = manifest(dir);
    Path out = tmp.resolve("out");
    List<String> args = new ArrayList<>();
    manifest.getAsJsonArray("args").forEach(a -> args.add(substitute(a.getAsString(), dir, out)));
    List<Path> fixtures = fixturesNamed(manifest);
    List<String> fixtureDigests = fixtures.stream().map(TreeDigest::of).toList();
    String before = TreeDigest.of(dir);

    CliRun run = CliRun.of(args.toArray(String[]::new));

    int exit = manifest.get("exit").getAsInt();
    assertEquals(exit, run.exit(), "exit code; stderr: " + run.err());
    List<String> expected = new ArrayList<>();
    manifest.getAsJsonArray("stderr").forEach(s -> expected.add(substitute(s.getAsString(), dir, out)));
    if (expected.isEmpty()) {
      assertEquals("", run.err(), "nothing on stderr");
    } else {
      assertFalse(run.errLine().isEmpty(), "a line on stderr expected");
      assertFalse(run.errLine().contains("\n"), "one line expected, got:\n" + run.err());
      assertFalse(run.err().contains("Exception") || run.err().contains("\tat "), "no stack trace: " + run.err());
      for (String s : expected) {
        assertTrue(run.err().contains(s), "stderr should contain '" + s + "': " + run.err());
      }
    }
    if (exit == ExitCode.BAD_INPUT) {
      assertTrue(run.err().startsWith("finetune " + args.get(0) + ": "), "the line names the command: " + run.err());
      assertEquals("", run.out(), "nothing on stdout when the input is refused");
    } else if (!expected.isEmpty()) {
      assertTrue(run.err().startsWith("warning: "), "a warning expected: " + run.err());
    }
    if (manifest.has("stdout")) {
      for (JsonElement s : manifest.getAsJsonArray("stdout")) {
        String want = substitute(s.getAsString(), dir, out);
        assertTrue(run.out().contains(want), "stdout should contain '" + want + "': " + run.out());
      }
    }
    assertFalse(Files.exists(out), "no output may be left at " + out);
    assertEquals(before, TreeDigest.of(dir), "the case's files were modified");
    assertEquals(fixtureDigests, fixtures.stream().map(TreeDigest::of).toList(), "a fixture was modified");
    if (manifest.has("decodes")) {
      assertDecodesAsTensorFlow(manifest.getAsJsonObject("decodes"), dir, out);
    }
  }

  /** The file decodes to TensorFlow's size and samples: their sum, and every one of them (a SHA-256 of them as bytes). */
  private static void assertDecodesAsTensorFlow(JsonObject expected, Path dir, Path out) {
    Path file = Path.of(substitute(expected.get("file").getAsString(), dir, out));
    ImageDecoder.Image image;
    try {
      image = ImageDecoder.decode(file);
    } catch (IOException e) {
      throw new AssertionError(file + " should decode: " + e.getMessage(), e);
    }
    assertEquals(expected.get("width").getAsInt(), image.width(), "width");
    assertEquals(expected.get("height").getAsInt(), image.height(), "height");
    long sum = 0;
    byte[] samples = new byte[image.rgb().length];
    for (int i = 0; i < samples.length; i++) {
      sum += (long) image.rgb()[i];
      samples[i] = (byte) image.rgb()[i];
    }
    assertEquals(expected.get("sum").getAsLong(), sum, "sum of the RGB samples (TensorFlow's decode)");
    try {
      assertEquals(expected.get("sha256").getAsString(),
          HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(samples)), "the RGB samples");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  @Test
  void corpusHasThirtyCasesCoveringEveryKindAndEachManifestMatchesItsFolder() {
    List<Path> dirs = caseFolders();
    assertTrue(dirs.size() >= 30, "at least 30 cases, found " + dirs.size());
    Set<String> kinds = new TreeSet<>();
    try (Stream<Path> top = Files.list(CORPUS)) {
      assertEquals(dirs, top.sorted().toList(), "testdata/bad holds case folders only");
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    for (Path dir : dirs) {
      JsonObject m = manifest(dir);
      assertEquals(Set.of("kind", "args", "exit", "stderr"), Set.copyOf(m.keySet().stream()
          .filter(k -> !k.equals("decodes") && !k.equals("stdout")).toList()), dir + ": manifest keys");
      int exit = m.get("exit").getAsInt();
      assertTrue(exit == ExitCode.BAD_INPUT || exit == ExitCode.OK, dir + ": exit 2, or 0 for a warning or a decode");
      assertTrue(exit == ExitCode.OK || m.getAsJsonArray("stderr").size() >= 1, dir + ": an error names its file");
      kinds.add(m.get("kind").getAsString());
      // every file the command line names under the case folder is there
      for (JsonElement a : m.getAsJsonArray("args")) {
        String arg = a.getAsString();
        if (arg.startsWith("{case}/")) {
          Path p = dir.resolve(arg.substring("{case}/".length()));
          assertTrue(Files.exists(p), dir + ": the manifest names " + p + ", which is missing");
        }
      }
      fixturesNamed(m).forEach(f -> assertTrue(Files.isDirectory(f), dir + ": fixture " + f + " is missing"));
    }
    Set<String> missing = new TreeSet<>(REQUIRED_KINDS);
    missing.removeAll(kinds);
    assertTrue(missing.isEmpty(), "kinds without a case: " + missing);
  }

  private static List<Path> caseFolders() {
    try (Stream<Path> list = Files.list(CORPUS)) {
      return list.filter(Files::isDirectory).sorted().toList();
    } catch (IOException e) {
      throw new UncheckedIOException("cannot list " + CORPUS + " (scripts/make_bad_inputs.py writes it)", e);
    }
  }

  private static JsonObject manifest(Path dir) {
    try {
      return JsonParser.parseString(Files.readString(dir.resolve("case.json"))).getAsJsonObject();
    } catch (IOException e) {
      throw new UncheckedIOException(dir + " has no case.json", e);
    }
  }

  private static List<Path> fixturesNamed(JsonObject manifest) {
    List<Path> fixtures = new ArrayList<>();
    for (JsonElement a : manifest.getAsJsonArray("args")) {
      Matcher m = FIXTURE.matcher(a.getAsString());
      while (m.find()) {
        fixtures.add(Fixture.of(m.group(1)).model());
      }
    }
    return fixtures;
  }

  private static String substitute(String s, Path dir, Path out) {
    Matcher m = FIXTURE.matcher(s);
    StringBuilder b = new StringBuilder();
    while (m.find()) {
      m.appendReplacement(b, Matcher.quoteReplacement(Fixture.of(m.group(1)).model().toString()));
    }
    m.appendTail(b);
    return b.toString().replace("{case}", dir.toString()).replace("{out}", out.toString());
  }
}
