package org.finetune.export;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.OptionalLong;
import org.finetune.data.ImageOps;
import org.finetune.train.PlanJson;
import org.finetune.train.TrainingPlan;

/**
 * Where an export came from, as its {@code assets/finetune.json} records it: the base model and
 * its digest, the plan, what training did, and the task's own record (class names,
 * preprocessing, ...). {@link Exporter} writes the file; this class reads it, and owns the task
 * record's keys both ways.
 *
 * @param mode {@code same_architecture} or {@code new_head}
 * @param baseModel the base model's directory when it was exported
 * @param baseDigest its {@link DirectoryDigest}
 * @param plan the training plan (empty for an export of an untrained model)
 * @param epochs epochs trained, where the trainer counted them
 * @param optimizerSteps optimizer steps taken
 * @param metrics the last epoch's metrics by name
 * @param datasetDigest a digest of the training data
 * @param task what the task recorded
 */
public record Provenance(String mode, Path baseModel, String baseDigest, Optional<TrainingPlan> plan,
    OptionalLong epochs, OptionalLong optimizerSteps, Map<String, Double> metrics, Optional<String> datasetDigest,
    Optional<Task> task) {
  public Provenance {
    Objects.requireNonNull(mode, "mode");
    metrics = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(metrics));
  }

  /**
   * What a task records about its data, for whoever uses the export: the class names an image or
   * clip classifier's outputs score, in order; the preprocessing its images need; frames per clip;
   * tokens per block of text.
   *
   * @param name image-classification, video-classification, causal-lm or arrays
   * @param data the training data's location
   */
  public record Task(String name, List<String> classes, Optional<ImageOps.Preprocess> preprocess, OptionalInt frames,
      OptionalInt sequenceLength, Optional<String> tokenizer, Optional<String> data) {
    public Task {
      Objects.requireNonNull(name, "name");
      classes = List.copyOf(classes);
    }

    /** An image (or, with frames, clip) classifier's record. */
    public static Task classifier(String name, List<String> classes, ImageOps.Preprocess preprocess, OptionalInt frames,
        Path data) {
      return new Task(name, classes, Optional.of(preprocess), frames, OptionalInt.empty(), Optional.empty(),
          Optional.of(data.toAbsolutePath().toString()));
    }

    /** The record of a model trained on arrays read from {@code data}. */
    public static Task arrays(Path data) {
      return new Task("arrays", List.of(), Optional.empty(), OptionalInt.empty(), OptionalInt.empty(), Optional.empty(),
          Optional.of(data.toAbsolutePath().toString()));
    }

    /** A causal language model's record. */
    public static Task causalLm(int sequenceLength, String tokenizer, List<Path> data) {
      return new Task("causal-lm", List.of(), Optional.empty(), OptionalInt.empty(), OptionalInt.of(sequenceLength),
          Optional.of(tokenizer), Optional.of(String.join(",", data.stream().map(p -> p.toAbsolutePath().toString())
              .toList())));
    }

    /** The record as the provenance's {@code "extra"} object. */
    public JsonObject toJson() {
      JsonObject o = new JsonObject();
      o.addProperty("task", name);
      if (!classes.isEmpty()) {
        JsonArray names = new JsonArray();
        classes.forEach(names::add);
        o.add("classes", names);
      }
      preprocess.ifPresent(p -> o.addProperty("preprocess", p.name().toLowerCase(java.util.Locale.ROOT)));
      tokenizer.ifPresent(t -> o.addProperty("tokenizer", t));
      sequenceLength.ifPresent(n -> o.addProperty("sequence_length", n));
      data.ifPresent(d -> o.addProperty("data", d));
      frames.ifPresent(n -> o.addProperty("frames", n));
      return o;
    }

    static Task fromJson(JsonObject o) {
      List<String> classes = new ArrayList<>();
      if (o.has("classes")) {
        for (JsonElement e : o.getAsJsonArray("classes")) {
          classes.add(e.getAsString());
        }
      }
      return new Task(o.has("task") ? o.get("task").getAsString() : "", classes,
          o.has("preprocess") ? Optional.of(ImageOps.Preprocess.byName(o.get("preprocess").getAsString()))
              : Optional.empty(),
          o.has("frames") ? OptionalInt.of(o.get("frames").getAsInt()) : OptionalInt.empty(),
          o.has("sequence_length") ? OptionalInt.of(o.get("sequence_length").getAsInt()) : OptionalInt.empty(),
          o.has("tokenizer") ? Optional.of(o.get("tokenizer").getAsString()) : Optional.empty(),
          o.has("data") ? Optional.of(o.get("data").getAsString()) : Optional.empty());
    }
  }

  /**
   * The provenance of the SavedModel in {@code dir}: empty when it has none (it was not written by
   * finetune).
   *
   * @throws IllegalArgumentException when the file is there but damaged, naming it
   */
  public static Optional<Provenance> read(Path dir) {
    Path file = dir.resolve("assets").resolve(Exporter.PROVENANCE);
    if (!Files.isRegularFile(file)) {
      return Optional.empty();
    }
    try {
      JsonObject p = JsonParser.parseString(Files.readString(file, StandardCharsets.UTF_8)).getAsJsonObject();
      JsonObject base = p.getAsJsonObject("base");
      JsonObject training = p.has("training") ? p.getAsJsonObject("training") : new JsonObject();
      Map<String, Double> metrics = new LinkedHashMap<>();
      if (training.has("metrics")) {
        training.getAsJsonObject("metrics").entrySet().forEach(e -> metrics.put(e.getKey(), e.getValue().getAsDouble()));
      }
      return Optional.of(new Provenance(p.get("mode").getAsString(), Path.of(base.get("path").getAsString()),
          base.get("digest").getAsString(),
          p.has("plan") ? Optional.of(PlanJson.fromJson(p.getAsJsonObject("plan"))) : Optional.empty(),
          training.has("epochs") ? OptionalLong.of(training.get("epochs").getAsLong()) : OptionalLong.empty(),
          training.has("optimizer_steps") ? OptionalLong.of(training.get("optimizer_steps").getAsLong())
              : OptionalLong.empty(),
          metrics,
          training.has("dataset_digest") ? Optional.of(training.get("dataset_digest").getAsString()) : Optional.empty(),
          p.has("extra") ? Optional.of(Task.fromJson(p.getAsJsonObject("extra"))) : Optional.empty()));
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
    } catch (RuntimeException e) {
      throw new IllegalArgumentException("the provenance " + file + " is damaged (" + e.getMessage() + ")", e);
    }
  }

  /** The class names the export's outputs score, in order (empty when it recorded none). */
  public List<String> classes() {
    return task.map(Task::classes).orElse(List.of());
  }

  /** The preprocessing its images need, when recorded. */
  public Optional<ImageOps.Preprocess> preprocess() {
    return task.flatMap(Task::preprocess);
  }
}
