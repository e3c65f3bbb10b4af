package org.finetune.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.finetune.cli.Cli;
import org.finetune.cli.ExitCode;
import org.finetune.testing.Images;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A job written as JSON trains as the same job given as flags, and bad job files name the key at fault. */
class JobSpecTest {
  private static final List<String> CLASSES = List.of("cows", "horses", "humans");

  @TempDir
  Path tmp;

  @Test
  void aJobFileTrainsExactlyAsTheSameFlagsDo() throws IOException {
    Images.folder(tmp.resolve("data"), CLASSES, 6, 32, 7);
    Path model = FineTuneJobTest.smallVgg16();
    String flags = FineTuneJobTest.cli("train", model.toString(), "--data", tmp.resolve("data").toString(), "--head",
        "--features-at", "block2_pool", "--unfreeze", "gradual:1", "--groups", "block:block2", "--epochs", "2",
        "--batch-size", "4", "--val-split", "0.25", "--optimizer", "sgd", "--lr", "0.02", "--flip", "--seed", "7",
        "--checkpoints", tmp.resolve("flags/checkpoints").toString(), "--history",
        tmp.resolve("flags/history.csv").toString(), "--out", tmp.resolve("flags/out").toString());
    // The same job as a file beside its data: relative paths are the file's folder's.
    Path file = tmp.resolve("job.json");
    Files.writeString(file, """
        {"model": "%s", "data": "data", "new_head": true, "features_at": "block2_pool",
         "unfreeze_every": 1, "groups": ["block:block2"], "epochs": 2, "batch_size": 4, "validation_split": 0.25,
         "optimizer": {"name": "sgd", "learning_rate": 0.02, "momentum": 0.9}, "flip": true, "seed": 7,
         "checkpoints": "file/checkpoints", "history": "file/history.csv", "export": "file/out",
         "result": "file/result.json"}
        """.formatted(model));
    String fromFile = FineTuneJobTest.cli("train", "--job", file.toString());
    assertEquals(plan(flags), plan(fromFile), "the same plan");
    assertEquals(Files.readAllLines(tmp.resolve("flags/history.csv")), Files.readAllLines(tmp.resolve("file/history.csv")));
    assertEquals(Files.readString(tmp.resolve("flags/checkpoints/last/plan.json")),
        Files.readString(tmp.resolve("file/checkpoints/last/plan.json")));
    FineTuneJobTest.assertSamePredictions(tmp.resolve("flags/out"), tmp.resolve("file/out"));
    FineTuneResult result = FineTuneResult.read(tmp.resolve("file/result.json"));
    assertEquals(2, result.history().size());
    assertEquals(tmp.resolve("file/out"), result.export().orElseThrow().dir());
  }

  @Test
  void aWrittenJobReadsBackWithItsPathsMadeAbsolute() {
    JobSpec spec = JobSpec.fromJson(JsonParser.parseString(
        "{\"model\": \"m\", \"data\": \"d\", \"epochs\": 3, \"optimizer\": {\"name\": \"adam\"}}").getAsJsonObject(),
        tmp);
    Path file = tmp.resolve("sub/job.json");
    spec.write(file);
    JobSpec read = JobSpec.read(file);
    assertEquals(tmp.resolve("m"), read.model().orElseThrow());
    assertEquals(tmp.resolve("d").toString(), read.toJson().get("data").getAsString());
    assertEquals(3, read.toJson().get("epochs").getAsInt());
    assertEquals(spec.model(), read.model());
  }

  /** An arrays job: .npy targets by output become absolute, array names stay names; losses by output. */
  @Test
  void anArraysJobWritesItsTargetFilesAbsolute() {
    JobSpec spec = JobSpec.fromJson(JsonParser.parseString("{\"model\": \"m\", \"task\": \"arrays\", \"data\": \"x.npz\","
        + " \"targets\": {\"kind\": \"kind.npy\", \"size\": \"size\"}, \"loss\": {\"kind\": \"sparse_categorical_crossentropy\","
        + " \"size\": \"mse\"}, \"loss_weights\": {\"size\": 0.5}, \"shuffle\": false}").getAsJsonObject(), tmp);
    Path file = tmp.resolve("sub/job.json");
    spec.write(file);
    JsonObject read = JobSpec.read(file).toJson();
    assertEquals(tmp.resolve("x.npz").toString(), read.get("data").getAsString());
    assertEquals(tmp.resolve("kind.npy").toString(), read.getAsJsonObject("targets").get("kind").getAsString());
    assertEquals("size", read.getAsJsonObject("targets").get("size").getAsString());
    assertEquals(spec.toJson().get("loss"), read.get("loss"));
    JobException weight = assertThrows(JobException.class, () -> JobSpec.fromJson(JsonParser.parseString(
        "{\"task\": \"arrays\", \"data\": \"x.npz\", \"targets\": \"y.npy\", \"loss_weights\": {\"a\": -1}}")
        .getAsJsonObject()));
    assertEquals("\"loss_weights\" gives a -1; give each output a number >= 0", weight.getMessage());
    JobException imageKey = assertThrows(JobException.class, () -> JobSpec.fromJson(JsonParser.parseString(
        "{\"data\": \"d\", \"loss\": \"mse\"}").getAsJsonObject()));
    assertEquals("\"loss\" is for the arrays task; leave it out, or set \"task\": \"arrays\"", imageKey.getMessage());
  }

  @Test
  void badJobsAreRefusedNamingTheKey() throws IOException {
    JobException unknown = assertThrows(JobException.class, () -> JobSpec.fromJson(JsonParser.parseString(
        "{\"data\": \"d\", \"epoch\": 3}").getAsJsonObject()));
    assertTrue(unknown.getMessage().startsWith("unknown key \"epoch\"; use one of model, task, data"),
        unknown.getMessage());
    JobException type = assertThrows(JobException.class, () -> JobSpec.fromJson(JsonParser.parseString(
        "{\"data\": \"d\", \"new_head\": \"yes\"}").getAsJsonObject()));
    assertEquals("\"new_head\" is \"yes\"; give true or false", type.getMessage());
    JobException text = assertThrows(JobException.class, () -> JobSpec.fromJson(JsonParser.parseString(
        "{\"task\": \"causal-lm\", \"data\": [\"a.txt\"], \"flip\": true}").getAsJsonObject()));
    assertEquals("\"flip\" applies to images, not to causal-lm; leave it out", text.getMessage());

    Path file = tmp.resolve("job.json");
    Files.writeString(file, "{\"data\": \"d\", \"epochs\": 0}");
    CliRun zero = CliRun.of("train", "--job", file.toString());
    assertEquals(ExitCode.BAD_INPUT, zero.exit);
    assertTrue(zero.err.contains("the job " + file + ": \"epochs\" is 0; give a whole number >= 1"), zero.err);
    Files.writeString(file, "{\"data\": \"d\"}");
    CliRun noModel = CliRun.of("train", "--job", file.toString());
    assertEquals(ExitCode.BAD_INPUT, noModel.exit);
    assertTrue(noModel.err.contains("names no \"model\""), noModel.err);
    CliRun mixed = CliRun.of("train", "--job", file.toString(), "--epochs", "3");
    assertEquals(ExitCode.BAD_INPUT, mixed.exit);
    assertTrue(mixed.err.contains("--job FILE describes the whole job; put --epochs in the file"), mixed.err);
  }

  /** The printed plan line. */
  private static String plan(String out) {
    return out.lines().filter(l -> l.startsWith("Plan")).findFirst().orElseThrow(() -> new AssertionError(out));
  }

  private record CliRun(int exit, String out, String err) {
    static CliRun of(String... args) {
      StringWriter out = new StringWriter();
      StringWriter err = new StringWriter();
      int exit = new Cli().run(args, new PrintWriter(out, true), new PrintWriter(err, true));
      return new CliRun(exit, out.toString(), err.toString());
    }
  }
}
