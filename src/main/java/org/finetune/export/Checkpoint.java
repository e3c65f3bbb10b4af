package org.finetune.export;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.finetune.train.PlanJson;
import org.finetune.train.Trainer;
import org.finetune.train.TrainingPlan;

/**
 * A training checkpoint: a directory with the plan ({@code plan.json}), where training stood
 * ({@code state.json}: base model and its digest, optimizer steps, stage, stages built, and what
 * the caller adds, such as epoch and data position) and every variable training changes,
 * optimizer state included ({@code variables/variables.*}, a TensorFlow checkpoint written from
 * the runtime). Written atomically: a checkpoint directory is either the old one or the new one;
 * a save killed between moving the old one aside and renaming the new one into place is undone
 * by the next {@link #read} or {@link #recover} (the old one is put back).
 */
public final class Checkpoint {
  public static final String PLAN = "plan.json";
  public static final String STATE = "state.json";

  /**
   * A checkpoint as read.
   *
   * @param dir the checkpoint directory
   * @param plan the training plan
   * @param model the base model's directory
   * @param modelDigest its {@link DirectoryDigest} when the checkpoint was written
   * @param iterations optimizer steps taken
   * @param stage the current stage
   * @param builtStages the stages whose optimizer state the checkpoint holds
   * @param extra what the caller stored (epoch, data position, metrics, ...)
   */
  public record Info(Path dir, TrainingPlan plan, Path model, String modelDigest, long iterations, int stage,
      List<Integer> builtStages, JsonObject extra) {
    public Info {
      builtStages = List.copyOf(builtStages);
    }
  }

  private Checkpoint() {}

  /** Writes {@code trainer}'s state to {@code dir}, replacing an earlier checkpoint there. */
  public static void save(Trainer trainer, Path dir, JsonObject extra) {
    Path model = trainer.model().info().dir().toAbsolutePath().normalize();
    try (AtomicDirectory atomic = AtomicDirectory.begin(dir, true)) {
      Path variables = atomic.dir().resolve("variables");
      Files.createDirectories(variables);
      trainer.saveState(variables.resolve("variables"));
      Files.writeString(atomic.dir().resolve(PLAN), pretty(PlanJson.toJson(trainer.plan())));
      JsonObject state = new JsonObject();
      state.addProperty("format", "finetune-checkpoint/1");
      state.addProperty("model", model.toString());
      state.addProperty("model_digest", DirectoryDigest.of(model));
      state.addProperty("iterations", trainer.iterations());
      state.addProperty("stage", trainer.stage());
      JsonArray built = new JsonArray();
      trainer.builtStages().forEach(built::add);
      state.add("built_stages", built);
      state.add("extra", extra == null ? new JsonObject() : extra);
      Files.writeString(atomic.dir().resolve(STATE), pretty(state));
      atomic.commit();
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write the checkpoint " + dir + ": " + e.getMessage(), e);
    }
  }

  /**
   * Settles what a save killed part-way left beside {@code dir} (see {@link #save}): the previous
   * checkpoint, if it was moved aside and never replaced, is put back; unfinished copies are
   * deleted.
   *
   * @return whether {@code dir} exists afterwards
   */
  public static boolean recover(Path dir) {
    try {
      return AtomicDirectory.recover(dir);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot tidy up beside the checkpoint " + dir + ": " + e.getMessage(), e);
    }
  }

  /**
   * Reads a checkpoint's plan and state (not its variables), after {@link #recover} has put back
   * a checkpoint an interrupted save left moved aside.
   *
   * @throws IllegalArgumentException when {@code dir} is not a checkpoint, naming what is missing
   */
  public static Info read(Path dir) {
    recover(dir);
    try {
      JsonObject plan = jsonObject(dir, PLAN);
      JsonObject state = jsonObject(dir, STATE);
      if (!Files.isRegularFile(dir.resolve("variables").resolve("variables.index"))) {
        throw new IllegalArgumentException(dir + " is not a finetune checkpoint: variables/variables.index is missing");
      }
      List<Integer> built = new ArrayList<>();
      for (JsonElement e : state.getAsJsonArray("built_stages")) {
        built.add(e.getAsInt());
      }
      return new Info(dir, PlanJson.fromJson(plan), Path.of(state.get("model").getAsString()),
          state.get("model_digest").getAsString(), state.get("iterations").getAsLong(), state.get("stage").getAsInt(),
          built, state.has("extra") ? state.getAsJsonObject("extra") : new JsonObject());
    } catch (NoSuchFileException e) {
      throw new IllegalArgumentException(dir + " is not a finetune checkpoint: " + e.getFile() + " is missing", e);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read the checkpoint " + dir + ": " + e.getMessage(), e);
    } catch (IllegalStateException | NullPointerException | UnsupportedOperationException
        | com.google.gson.JsonParseException e) {
      throw new IllegalArgumentException("the checkpoint " + dir + " is damaged: " + e.getMessage(), e);
    }
  }

  /** {@code dir/name} as a JSON object; a file that is not one makes the checkpoint damaged, naming the file. */
  private static JsonObject jsonObject(Path dir, String name) throws IOException {
    Path file = dir.resolve(name);
    String text = Files.readString(file, StandardCharsets.UTF_8);
    try {
      JsonElement e = JsonParser.parseString(text);
      if (e.isJsonObject()) {
        return e.getAsJsonObject();
      }
      throw new IllegalArgumentException("the checkpoint " + dir + " is damaged: " + file + " is not a JSON object;"
          + " resume from another checkpoint (e.g. best/ beside last/) or train again");
    } catch (com.google.gson.JsonParseException e) {
      throw new IllegalArgumentException("the checkpoint " + dir + " is damaged: " + file + " is not valid JSON ("
          + PlanJson.syntaxError(e) + "); resume from another checkpoint (e.g. best/ beside last/) or train again", e);
    }
  }

  /**
   * Puts a checkpoint's state into {@code trainer}, which must follow the checkpoint's plan on
   * its base model: builds the stages the checkpoint has optimizer state for, restores every
   * variable, and returns to the checkpoint's stage.
   */
  public static void restore(Trainer trainer, Info info) {
    if (!PlanJson.toJson(trainer.plan()).equals(PlanJson.toJson(info.plan()))) {
      throw new IllegalArgumentException("the trainer's plan differs from the checkpoint's (" + info.dir().resolve(PLAN)
          + "); build the trainer with the checkpoint's plan");
    }
    for (int s : info.builtStages()) {
      trainer.useStage(s);
    }
    trainer.useStage(info.stage());
    trainer.restoreState(info.dir().resolve("variables").resolve("variables"));
  }

  private static String pretty(JsonObject o) {
    return new GsonBuilder().setPrettyPrinting().serializeNulls().create().toJson(o) + "\n";
  }
}
