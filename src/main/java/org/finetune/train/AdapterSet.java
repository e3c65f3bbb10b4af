package org.finetune.train;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.finetune.data.NpyArray;

/**
 * Trained low-rank adapters apart from their base model: for each adapted kernel, {@code A} and
 * {@code B}, with the rank and alpha that scale them. On disk, a folder with {@value #FILE} and
 * one {@code .npy} file per matrix (NumPy reads them as they are).
 *
 * @param signature the base model's signature they were trained through
 * @param baseDigest the digest of the base model's directory, where known, so that the adapters
 *     are applied to the base they were trained on
 */
public record AdapterSet(int rank, double alpha, String signature, Optional<String> baseDigest, List<Pair> pairs) {
  /** The file naming everything else in an adapters folder. */
  public static final String FILE = "adapters.json";
  static final String FORMAT = "finetune-adapters/1";

  /** One kernel's adapters: it reads {@code kernel + (alpha / rank) a b}. */
  public record Pair(String kernel, NpyArray a, NpyArray b) {}

  public AdapterSet {
    pairs = List.copyOf(pairs);
    if (pairs.isEmpty()) {
      throw new IllegalArgumentException("an adapter set adapts at least one kernel");
    }
  }

  public AdapterSet withBaseDigest(String digest) {
    return new AdapterSet(rank, alpha, signature, Optional.of(digest), pairs);
  }

  /** The spec that places adapters on exactly these kernels. */
  LowRankSpec spec() {
    return new LowRankSpec(rank, alpha, pairs.stream().map(Pair::kernel).toList(), LowRankSpec.DEFAULT_SEED);
  }

  /** Writes {@value #FILE} and the matrices into {@code dir} (which must exist). */
  public void writeInto(Path dir) throws IOException {
    JsonObject o = new JsonObject();
    o.addProperty("format", FORMAT);
    o.addProperty("rank", rank);
    o.addProperty("alpha", alpha);
    o.addProperty("signature", signature);
    baseDigest.ifPresent(d -> o.addProperty("base_digest", d));
    JsonArray list = new JsonArray();
    for (int i = 0; i < pairs.size(); i++) {
      Pair p = pairs.get(i);
      JsonObject e = new JsonObject();
      e.addProperty("kernel", p.kernel());
      e.addProperty("a", i + "_a.npy");
      e.addProperty("b", i + "_b.npy");
      p.a().write(dir.resolve(i + "_a.npy"));
      p.b().write(dir.resolve(i + "_b.npy"));
      list.add(e);
    }
    o.add("adapters", list);
    Files.writeString(dir.resolve(FILE), new GsonBuilder().setPrettyPrinting().create().toJson(o) + "\n",
        StandardCharsets.UTF_8);
  }

  /**
   * Reads an adapters folder.
   *
   * @throws IllegalArgumentException naming the file when it is not one this version writes
   */
  public static AdapterSet read(Path dir) {
    Path file = dir.resolve(FILE);
    try {
      if (!Files.isRegularFile(file)) {
        throw new IllegalArgumentException(dir + " holds no " + FILE + "; it is not a folder of exported adapters");
      }
      JsonObject o = JsonParser.parseString(Files.readString(file, StandardCharsets.UTF_8)).getAsJsonObject();
      if (!o.has("format") || !FORMAT.equals(o.get("format").getAsString())) {
        throw new IllegalArgumentException(file + " is not of format " + FORMAT);
      }
      List<Pair> pairs = new ArrayList<>();
      for (var e : o.getAsJsonArray("adapters")) {
        JsonObject p = e.getAsJsonObject();
        pairs.add(new Pair(p.get("kernel").getAsString(), NpyArray.read(inside(dir, p.get("a").getAsString())),
            NpyArray.read(inside(dir, p.get("b").getAsString()))));
      }
      return new AdapterSet(o.get("rank").getAsInt(), o.get("alpha").getAsDouble(), o.get("signature").getAsString(),
          o.has("base_digest") ? Optional.of(o.get("base_digest").getAsString()) : Optional.empty(), pairs);
    } catch (IOException | RuntimeException e) {
      if (e instanceof IllegalArgumentException i) {
        throw i;
      }
      throw new IllegalArgumentException("cannot read the adapters in " + dir + ": " + e.getMessage(), e);
    }
  }

  /** A file named in {@value #FILE}, which must stay inside the folder. */
  private static Path inside(Path dir, String name) {
    Path p = dir.resolve(name).normalize();
    if (!p.startsWith(dir.normalize()) || !p.getFileName().toString().endsWith(".npy")) {
      throw new IllegalArgumentException(dir.resolve(FILE) + " names " + name + ", which is no .npy file in " + dir);
    }
    return p;
  }
}
