package org.finetune.batch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.finetune.job.FineTuneResult;
import org.finetune.testing.Fixture;
import org.finetune.testing.Images;
import org.finetune.train.Fit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code finetune batch}: a 6-run sweep over the small VGG16 plus one broken job, killed (the
 * batch process and every run it started, with SIGKILL) once the first run has finished, then run
 * again: finished runs are skipped, the others run or resume, the broken one fails alone, and
 * the summary table, CSV and JSON name the best run.
 */
class BatchCommandTest {
  @TempDir
  Path tmp;

  private Path jobsFile() throws IOException {
    Path data = Images.folder(tmp.resolve("images"), List.of("cows", "horses", "humans"), 4, 32, 9);
    String model = Fixture.of("vgg16_small/keras3_export").model().toString();
    String json = """
        {
          "defaults": {"model": "%s", "data": "images", "new_head": true, "epochs": 2, "batch_size": 4,
                       "validation_split": 0.25, "features_at": "block2_pool"},
          "jobs": [
            {"name": "broken", "export": "out/broken", "train": "block:nosuch"}
          ],
          "sweeps": [
            {"name": "lr", "export": "out",
             "grid": {"optimizer.learning_rate": [0.01, 0.001, 0.0001], "optimizer.name": ["adam", "sgd"]}}
          ]
        }
        """.formatted(model);
    Path file = tmp.resolve("jobs.json");
    Files.writeString(file, json);
    assertTrue(Files.isDirectory(data));
    return file;
  }

  @Test
  void sweepSurvivesABrokenJobResumesAfterBeingKilledAndPrintsTheTable() throws Exception {
    Path file = jobsFile();
    List<Job> jobs = JobsFile.read(file);
    assertEquals(7, jobs.size());
    assertEquals("lr-1", jobs.get(1).name());
    assertEquals("optimizer.learning_rate=0.01 optimizer.name=adam", jobs.get(1).describeSettings());
    assertEquals("optimizer.learning_rate=0.0001 optimizer.name=sgd", jobs.get(6).describeSettings());
    JsonObject sgd = jobs.get(6).spec().toJson();
    assertEquals(JsonParser.parseString("{\"name\": \"sgd\", \"learning_rate\": 0.0001}"), sgd.get("optimizer"));
    assertEquals(2, sgd.get("epochs").getAsInt(), "the defaults are every run's");
    assertEquals(tmp.resolve("out").resolve("lr-6"), jobs.get(6).out());

    // First attempt, in a child process, killed with everything it started once a run has finished.
    List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-Xmx1g", "-cp", System.getProperty("java.class.path"), "org.finetune.cli.Main", "batch", file.toString(),
        "--parallel", "2", "--job-memory", "2g"));
    Process batch = new ProcessBuilder(command).redirectErrorStream(true).start();
    List<String> seen = new ArrayList<>();
    try (BufferedReader in = new BufferedReader(new InputStreamReader(batch.getInputStream(), StandardCharsets.UTF_8))) {
      String line;
      while ((line = in.readLine()) != null) {
        seen.add(line);
        if (line.startsWith("[done") && line.contains(": done")) {
          break;
        }
      }
      // Freeze the batch first (SIGSTOP), so that it cannot start a run between the list of its
      // children and the kill: a run started then would live on as an orphan and finish by itself.
      assertEquals(0, new ProcessBuilder("kill", "-STOP", Long.toString(batch.pid())).start().waitFor());
      List<ProcessHandle> tree = new ArrayList<>(batch.descendants().toList());
      tree.add(batch.toHandle());
      tree.forEach(ProcessHandle::destroyForcibly);
      assertTrue(batch.waitFor(30, TimeUnit.SECONDS));
      for (ProcessHandle h : tree) {
        h.onExit().get(30, TimeUnit.SECONDS);
      }
    }
    assertTrue(seen.stream().anyMatch(l -> l.startsWith("[done") && l.contains(": done")), String.join("\n", seen));
    long completeBefore = jobs.stream().filter(j -> Files.isRegularFile(j.out().resolve("saved_model.pb"))).count();
    assertTrue(completeBefore >= 1 && completeBefore < 7, completeBefore + " complete after the kill");

    // Second attempt, to the end.
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int exit = new org.finetune.cli.Cli().run(new String[] {"batch", file.toString(), "--parallel", "2",
        "--job-memory", "2g"}, new PrintWriter(out, true), new PrintWriter(err, true));
    String text = out.toString();
    assertEquals(3, exit, "partly done: one run failed\n" + text + err);
    assertTrue(err.toString().contains("1 of 7 runs failed"), err.toString());
    List<String> rows = text.lines().filter(l -> l.matches("^[ *] (broken|lr-\\d) .*")).toList();
    assertEquals(7, rows.size(), text);
    assertTrue(rows.stream().anyMatch(r -> r.contains("broken") && r.contains("failed") && r.contains("nosuch")),
        text);
    assertEquals(completeBefore, rows.stream().filter(r -> r.contains(" skipped ")).count(), text);
    assertEquals(6, rows.stream().filter(r -> r.contains(" skipped ") || r.contains(" done ")).count(), text);
    assertEquals(1, rows.stream().filter(r -> r.startsWith("*")).count(), "one best run: " + text);
    assertTrue(rows.stream().filter(r -> r.startsWith("*")).allMatch(r -> r.contains("val_accuracy")), text);
    for (Job j : jobs.subList(1, 7)) {
      assertTrue(Files.isRegularFile(j.out().resolve("saved_model.pb")), j.name());
      List<String> history = Files.readAllLines(tmp.resolve("jobs.runs").resolve(j.name()).resolve("history.csv"));
      assertEquals(3, history.size(), j.name() + ": header and 2 epochs, once each: " + history);
    }
    List<String> csv = Files.readAllLines(tmp.resolve("jobs.runs").resolve("summary.csv"));
    assertEquals(8, csv.size());
    // Each run is judged from its child's result file, which holds every epoch across the kill and
    // resume, and agrees with the history the child wrote beside it.
    for (Job j : jobs.subList(1, 7)) {
      Path runDir = tmp.resolve("jobs.runs").resolve(j.name());
      List<Fit.Epoch> epochs = FineTuneResult.read(runDir.resolve("result.json")).allEpochs();
      assertEquals(List.of(0, 1), epochs.stream().map(Fit.Epoch::epoch).toList(), j.name());
      List<String> history = Files.readAllLines(runDir.resolve("history.csv"));
      int col = List.of(history.get(0).split(",")).indexOf("val_accuracy");
      for (int e = 0; e < 2; e++) {
        assertEquals(Double.parseDouble(history.get(e + 1).split(",")[col]), epochs.get(e).logs().get("val_accuracy"),
            1e-6, j.name() + " epoch " + e);
      }
      double best = Math.max(epochs.get(0).logs().get("val_accuracy"), epochs.get(1).logs().get("val_accuracy"));
      String row = csv.stream().filter(l -> l.startsWith(j.name() + ",")).findFirst().orElseThrow();
      assertEquals(List.of("val_accuracy", Double.toString(best)), List.of(row.split(",")).subList(2, 4), row);
    }
    assertEquals(1, csv.stream().filter(l -> l.contains(",true,")).count(), String.join("\n", csv));
    assertTrue(Files.readString(tmp.resolve("jobs.runs").resolve("summary.json")).contains("\"best\": \"lr-"));

    // Third attempt: everything complete but the broken run.
    StringWriter again = new StringWriter();
    int exit3 = new org.finetune.cli.Cli().run(new String[] {"batch", file.toString()}, new PrintWriter(again, true),
        new PrintWriter(new StringWriter(), true));
    assertEquals(3, exit3);
    assertEquals(6, again.toString().lines().filter(l -> l.matches("^[ *] lr-\\d +skipped .*")).count(),
        again.toString());
  }

  @Test
  void jobsFilesAreValidatedWithTheKeyAtFault() throws IOException {
    Path f = tmp.resolve("bad.json");
    Files.writeString(f, "{\"jobs\": [{\"name\": \"a\", \"model\": \"m\", \"data\": \"d\", \"export\": \"o\","
        + " \"epochz\": 3}]}");
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> JobsFile.read(f));
    assertTrue(e.getMessage().contains("jobs[0]: unknown key \"epochz\""), e.getMessage());
    Files.writeString(f, "{\"jobs\": [{\"name\": \"a\", \"model\": \"m\", \"data\": \"d\", \"export\": \"o\","
        + " \"epochs\": \"three\"}]}");
    assertTrue(assertThrows(IllegalArgumentException.class, () -> JobsFile.read(f)).getMessage()
        .contains("jobs[0]: \"epochs\" is \"three\"; give a whole number >= 1"));
    Files.writeString(f, "{\"jobs\": [{\"name\": \"a\", \"model\": \"m\", \"data\": \"d\", \"export\": \"o\","
        + " \"checkpoints\": \"x\"}]}");
    assertTrue(assertThrows(IllegalArgumentException.class, () -> JobsFile.read(f)).getMessage()
        .contains("\"checkpoints\" is set by the batch runner"));
    Files.writeString(f, "{\"sweeps\": [{\"name\": \"s\", \"model\": \"m\", \"data\": \"d\", \"export\": \"o\","
        + " \"random\": {\"optimizer.learning_rate\": {\"log_uniform\": [1e-4, 1e-2]}}, \"trials\": 4,"
        + " \"sweep_seed\": 3}]}");
    List<Job> random = JobsFile.read(f);
    assertEquals(4, random.size());
    for (Job j : random) {
      double lr = j.spec().toJson().getAsJsonObject("optimizer").get("learning_rate").getAsDouble();
      assertTrue(lr >= 1e-4 && lr <= 1e-2, j.settings().toString());
      assertEquals("optimizer.learning_rate=" + lr, j.describeSettings(), "the name shows what runs");
    }
    assertEquals(random, JobsFile.read(f), "seeded");
    Files.writeString(f, "{\"jobs\": []}");
    assertTrue(assertThrows(IllegalArgumentException.class, () -> JobsFile.read(f)).getMessage().contains("no jobs"));
    Files.writeString(f, "not json");
    assertTrue(assertThrows(IllegalArgumentException.class, () -> JobsFile.read(f)).getMessage()
        .contains("not valid JSON"));
  }
}
